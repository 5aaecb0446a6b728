"""The twistd drop-in: C{twistd copilot-proxy} builds L{copilot_proxy.app._tap}."""

from twisted.application.service import ServiceMaker

copilotProxy = ServiceMaker(
    "copilot-proxy",
    "copilot_proxy.app._tap",
    "A streaming reverse proxy to the GitHub Copilot API.",
    "copilot-proxy",
)
