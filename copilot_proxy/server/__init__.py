"""
The listening side: the HTTP channel and its limits, the site, the resource
every request lands on, the admin pages.
"""

from ._admin import AdminPages
from ._eager_write import send_now
from ._resource import ProxyResource
from ._seat_login import SeatLogins
from ._service import ProxyService, ProxySite, listen

__all__ = [
    "AdminPages",
    "ProxyResource",
    "ProxyService",
    "ProxySite",
    "SeatLogins",
    "listen",
    "send_now",
]
