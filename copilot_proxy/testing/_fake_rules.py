"""
What the fake Copilot API of 2026 refuses, with the exact bodies the real
service was seen to send (the 2026 notes, sections 1.6, 4.5 and 6), and the
billing fields and quota headers it adds to what it serves.  Pure.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from ._catalog_2026 import (
    CHAT,
    MESSAGES,
    RESPONSES,
    UNKNOWN_MODEL_IDS,
    catalog_entry,
    is_disabled,
    serves,
    supports,
    token_prices,
)

#: The C{x-fake-refusal} values, each naming one refusal body seen in 2026.
REFUSAL_SHAPES = ("unsupported", "responses-api", "model-not-supported")

MODEL_NOT_SUPPORTED: dict[str, Any] = {
    "error": {
        "message": "The requested model is not supported.",
        "code": "model_not_supported",
        "param": "model",
        "type": "invalid_request_error",
    }
}

REASONING_EFFORT_REFUSED: dict[str, Any] = {
    "error": {
        "message": "Unrecognized request argument supplied: reasoning_effort",
        "code": "invalid_request_body",
    }
}


def endpoint_of_path(path: str) -> str | None:
    """Which model endpoint a request path names (C{/v1} alias or not), if any."""
    path = path.rstrip("/")
    for endpoint in (MESSAGES, CHAT, RESPONSES):
        if path.endswith(endpoint):
            return endpoint
    return None


def endpoint_refusal(
    model_id: str, endpoint: str, shape: str | None = None
) -> dict[str, Any] | None:
    """
    The 400 body for a model asked on an endpoint it is not served on, or
    L{None} when it is served.

    @param shape: one of L{REFUSAL_SHAPES}; by default the Responses API
        wording for Claude and Gemini on C{/responses} and the
        C{unsupported_api_for_model} one otherwise.
    """
    if serves(model_id, endpoint):
        return None
    entry = catalog_entry(model_id)
    if entry is None or model_id in UNKNOWN_MODEL_IDS or is_disabled(model_id):
        return MODEL_NOT_SUPPORTED
    if shape is None:
        foreign = entry.get("vendor") in ("Anthropic", "Google")
        shape = "responses-api" if endpoint == RESPONSES and foreign else "unsupported"
    if shape == "responses-api":
        return {
            "error": {
                "message": f"model {model_id} does not support Responses API.",
                "code": "unsupported_api_for_model",
                "type": "invalid_request_error",
            }
        }
    message = f'model "{model_id}" is not accessible via the {endpoint} endpoint'
    if shape == "model-not-supported":
        return {
            "error": {
                "message": message,
                "code": "model_not_supported",
                "type": "invalid_request_error",
            }
        }
    return {"error": {"message": message, "code": "unsupported_api_for_model"}}


def reasoning_effort_refusal(payload: dict[str, Any]) -> dict[str, Any] | None:
    """
    The 400 body for a Chat Completions C{reasoning_effort} the model does not
    declare; unlisted models take anything.
    """
    if "reasoning_effort" not in payload:
        return None
    declared = supports(str(payload.get("model")))
    if declared is None or declared.get("reasoning_effort"):
        return None
    return REASONING_EFFORT_REFUSED


#: The longest C{safety_identifier} and C{prompt_cache_key} C{/responses} takes.
MAX_IDENTIFIER = 64


def identifier_refusal(payload: dict[str, Any]) -> dict[str, Any] | None:
    """
    The 400 body for a C{/responses} C{safety_identifier} or
    C{prompt_cache_key} over L{MAX_IDENTIFIER} characters, in the words of
    OpenAI's Responses API, which refuses them so (as Azure's does; the
    clients of 2026 cap their keys for it).  No Copilot capture: inferred.
    """
    for name in ("safety_identifier", "prompt_cache_key"):
        value = payload.get(name)
        if isinstance(value, str) and len(value) > MAX_IDENTIFIER:
            message = (
                f"Invalid '{name}': string too long. Expected a string with maximum length "
                f"{MAX_IDENTIFIER}, but got a string with length {len(value)} instead."
            )
            return {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": name,
                    "code": "string_above_max_length",
                }
            }
    return None


@dataclass(frozen=True)
class Tokens:
    """What one answer counts, from which every usage shape is derived."""

    input: int
    output: int
    cached: int = 0
    reasoning: int = 0


@dataclass(frozen=True)
class Reported:
    """
    The usage one answer carries, as the fake wrote it.

    @ivar tokens: what its C{usage} tells; all zero when it has none (a chat
        stream not asked to include usage carries only C{copilot_usage}).
    @ivar nano_aiu: its C{copilot_usage.total_nano_aiu}; 0 when it has none.
    """

    model: str
    tokens: Tokens
    nano_aiu: int


def reported(model_id: str, tokens: Tokens, with_usage: bool = True) -> Reported:
    """
    What an answer with this C{copilot_usage} (and C{usage}, if
    C{with_usage}) reports.  Without C{usage}, the cost record's token
    details still count input, cache reads and output (not reasoning).
    """
    nano = int(copilot_usage(model_id, tokens)["total_nano_aiu"])
    counted = tokens if with_usage else Tokens(tokens.input, tokens.output, tokens.cached, 0)
    return Reported(model_id, counted, nano)


@dataclass(frozen=True)
class UsageTotals:
    """
    The sum of the usage a fake reported for one model, in OpenAI's meaning
    (C{input} includes C{cached}, C{output} includes C{reasoning}).

    @ivar answers: how many answers reported usage.
    @ivar nano_aiu: the sum of their C{copilot_usage.total_nano_aiu}.
    """

    answers: int = 0
    input: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0
    nano_aiu: int = 0

    def plus(self, answer: Reported) -> UsageTotals:
        """These totals with one more answer's usage."""
        tokens = answer.tokens
        return UsageTotals(
            self.answers + 1,
            self.input + tokens.input,
            self.cached + tokens.cached,
            self.output + tokens.output,
            self.reasoning + tokens.reasoning,
            self.nano_aiu + answer.nano_aiu,
        )


def copilot_usage(model_id: str, tokens: Tokens) -> dict[str, Any]:
    """
    The C{copilot_usage} cost record: per token type, the count and its price
    in nano-AIU per batch, and the total (0 for models without prices).
    """
    prices = token_prices(model_id) or {}
    batch = int(prices.get("batch_size", 1000000))
    details = []
    total = 0
    for kind, count, price_key in (
        ("input", tokens.input - tokens.cached, "input_price"),
        ("cache_read", tokens.cached, "cache_price"),
        ("output", tokens.output, "output_price"),
    ):
        cost = int(prices.get(price_key, 0)) * 1_000_000_000
        details.append(
            {"token_type": kind, "token_count": count, "cost_per_batch": cost, "batch_size": batch}
        )
        total += count * cost // batch
    return {"token_details": details, "total_nano_aiu": total}


def openai_usage(tokens: Tokens) -> dict[str, Any]:
    """Chat Completions usage: C{prompt_tokens} includes the cached ones."""
    return {
        "prompt_tokens": tokens.input,
        "completion_tokens": tokens.output,
        "total_tokens": tokens.input + tokens.output,
        "prompt_tokens_details": {"cached_tokens": tokens.cached},
        "completion_tokens_details": {"reasoning_tokens": tokens.reasoning},
    }


def responses_usage(tokens: Tokens) -> dict[str, Any]:
    """Responses usage: C{input_tokens} includes the cached ones."""
    return {
        "input_tokens": tokens.input,
        "input_tokens_details": {"cached_tokens": tokens.cached},
        "output_tokens": tokens.output,
        "output_tokens_details": {"reasoning_tokens": tokens.reasoning},
        "total_tokens": tokens.input + tokens.output,
    }


def anthropic_usage(tokens: Tokens) -> dict[str, Any]:
    """Messages usage: C{input_tokens} excludes the cached ones."""
    return {
        "input_tokens": tokens.input - tokens.cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": tokens.cached,
        "output_tokens": tokens.output,
        "output_tokens_details": {"thinking_tokens": tokens.reasoning},
    }


#: The quota headers, each with how many percent one answered call uses and
#: how long after the fake started its window resets.
QUOTA_HEADERS: tuple[tuple[str, float, datetime.timedelta], ...] = (
    ("x-quota-snapshot-premium_interactions", 0.4, datetime.timedelta(days=30)),
    ("x-quota-snapshot-chat", 0.1, datetime.timedelta(days=30)),
    ("x-usage-ratelimit-session", 1.0, datetime.timedelta(hours=5)),
    ("x-usage-ratelimit-weekly", 0.2, datetime.timedelta(days=7)),
)


def quota_headers(calls: int, started: float) -> list[tuple[str, str]]:
    """
    The quota headers after C{calls} answered model calls, in the service's
    C{ent=0&ov=0.0&ovPerm=false&rem=<percent>&rst=<ISO time>} format.
    """
    begin = datetime.datetime.fromtimestamp(int(started), datetime.timezone.utc)
    headers = []
    for name, per_call, window in QUOTA_HEADERS:
        remaining = max(0.0, 100.0 - per_call * calls)
        reset = (begin + window).strftime("%Y-%m-%dT%H:%M:%SZ")
        value = f"ent=0&ov=0.0&ovPerm=false&rem={remaining:.1f}&rst={quote(reset, safe='')}"
        headers.append((name, value))
    return headers


def parse_quota(value: str) -> dict[str, str]:
    """A quota header's fields (C{rst} decoded), for tests."""
    return dict(parse_qsl(value, keep_blank_values=True))
