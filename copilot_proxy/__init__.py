"""
copilot-proxy: a streaming reverse proxy that lets ordinary HTTP clients use
the GitHub Copilot API.  Run it with C{twistd -n copilot-proxy}.
"""

from ._version import __version__

__all__ = ["__version__"]
