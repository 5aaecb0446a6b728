"""
What crosses the wire, as pure rules: headers, routes, request targets, error
bodies, server-sent events, log fields, outcomes, quota headers.
"""

from ._copilot_headers import (
    DEFAULT_HEADERS,
    BodyError,
    BodyFacts,
    CopilotHeaders,
    has_image,
    initiator,
    parse_json_body,
    parse_override,
)
from ._errors import anthropic_error, error_for, openai_error, upstream_error_text
from ._headers import (
    HOP_BY_HOP,
    client_response_headers,
    connection_tokens,
    is_event_stream,
    upstream_request_headers,
)
from ._log_fields import PARSE_LIMIT, model_from_body, new_request_id, path_for_log, safe_model
from ._outcome import Outcome
from ._proxy_env import (
    ForwardProxy,
    ProxySettingError,
    bypasses_proxy,
    forward_proxy_for,
    parse_proxy_url,
    proxy_chooser,
)
from ._quota import MAX_SNAPSHOTS, QuotaSnapshot, parse_quota_header, quota_headers
from ._request_target import (
    ALLOWED_METHODS,
    BAD_FRAMING,
    NOT_A_FORWARD_PROXY,
    ChunkSizeGuard,
    framing_problem,
    method_problem,
    target_problem,
)
from ._routes import Surface, classify, upstream_target
from ._secret import Secret
from ._sse import Event, SSESplitter, encode

__all__ = [
    "ALLOWED_METHODS",
    "BAD_FRAMING",
    "DEFAULT_HEADERS",
    "HOP_BY_HOP",
    "MAX_SNAPSHOTS",
    "NOT_A_FORWARD_PROXY",
    "PARSE_LIMIT",
    "BodyError",
    "BodyFacts",
    "ChunkSizeGuard",
    "CopilotHeaders",
    "Event",
    "ForwardProxy",
    "Outcome",
    "ProxySettingError",
    "QuotaSnapshot",
    "SSESplitter",
    "Secret",
    "Surface",
    "anthropic_error",
    "bypasses_proxy",
    "classify",
    "client_response_headers",
    "connection_tokens",
    "encode",
    "error_for",
    "forward_proxy_for",
    "framing_problem",
    "has_image",
    "initiator",
    "is_event_stream",
    "method_problem",
    "model_from_body",
    "new_request_id",
    "openai_error",
    "parse_json_body",
    "parse_override",
    "parse_proxy_url",
    "parse_quota_header",
    "path_for_log",
    "proxy_chooser",
    "quota_headers",
    "safe_model",
    "target_problem",
    "upstream_error_text",
    "upstream_request_headers",
    "upstream_target",
]
