"""
What crosses the wire, as pure rules: headers, routes, request targets, error
bodies, server-sent events, log fields, outcomes.
"""

from ._copilot_headers import (
    CopilotHeaders,
    DEFAULT_HEADERS,
    has_image,
    initiator,
    parse_json_body,
    parse_override,
)
from ._errors import json_answer, openai_error
from ._headers import (
    HOP_BY_HOP,
    client_response_headers,
    connection_tokens,
    upstream_request_headers,
)
from ._log_fields import PARSE_LIMIT, model_from_body, new_request_id, safe_model
from ._proxy_env import (
    ForwardProxy,
    ProxySettingError,
    bypasses_proxy,
    forward_proxy_for,
    parse_proxy_url,
    proxy_chooser,
)
from ._request_target import target_problem
from ._routes import Surface, classify, upstream_target
from ._secret import Secret
from ._sse import Event, SSESplitter, encode

__all__ = [
    "CopilotHeaders",
    "DEFAULT_HEADERS",
    "Event",
    "ForwardProxy",
    "HOP_BY_HOP",
    "PARSE_LIMIT",
    "ProxySettingError",
    "SSESplitter",
    "Secret",
    "Surface",
    "bypasses_proxy",
    "classify",
    "client_response_headers",
    "connection_tokens",
    "encode",
    "forward_proxy_for",
    "has_image",
    "initiator",
    "json_answer",
    "model_from_body",
    "new_request_id",
    "openai_error",
    "parse_json_body",
    "parse_override",
    "parse_proxy_url",
    "proxy_chooser",
    "safe_model",
    "target_problem",
    "upstream_request_headers",
    "upstream_target",
]
