"""The Prometheus metrics of one proxy (and of its workers) with bounded labels."""

from ._prometheus import (
    CONTENT_TYPE,
    ProxyMetrics,
    forget_process,
    method_label,
    route_group,
    status_class,
    use_multiprocess,
)
from ._quota import QuotaBoard, QuotaListener

__all__ = [
    "CONTENT_TYPE",
    "ProxyMetrics",
    "QuotaBoard",
    "QuotaListener",
    "forget_process",
    "method_label",
    "route_group",
    "status_class",
    "use_multiprocess",
]
