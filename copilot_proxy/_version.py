"""The one place the version lives: packaging and C{/healthz} read it."""

__version__ = "0.1.0"
