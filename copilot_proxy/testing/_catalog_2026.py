"""
The model catalog the fake Copilot API lists at C{GET /models}, shaped like
the 2026 service's (the 2026 notes, section 1.3), and the rules that follow
from it: which endpoints serve a model, and whether a model is served at all.

Pure data and lookups; the fake and tests of the router both read it.
"""

from __future__ import annotations

import copy
from typing import Any

CHAT = "/chat/completions"
RESPONSES = "/responses"
RESPONSES_WS = "ws:/responses"
MESSAGES = "/v1/messages"
EMBEDDINGS = "/embeddings"

#: The endpoints a model request can name, as the catalog spells them.
MODEL_ENDPOINTS = (CHAT, RESPONSES, MESSAGES, EMBEDDINGS)

#: Ids the fake refuses as "not supported" although the catalog does not list
#: them (every other unlisted id is served, as the 2025 fake did).
UNKNOWN_MODEL_IDS = frozenset({"no-such-model"})

_RESTRICTED = ["pro", "pro_plus", "individual_trial", "business", "enterprise"]
_MEDIA = ("image/jpeg", "image/png", "image/webp")


def _vision(images: int, media: tuple[str, ...] = _MEDIA) -> dict[str, Any]:
    return {
        "max_prompt_images": images,
        "max_prompt_image_size": 3145728,
        "supported_media_types": list(media),
    }


def _prices(input_price: int, output_price: int, cache_price: int) -> dict[str, Any]:
    """Prices in the tiered layout of API version 2026-06-01: AIUs per million tokens."""
    return {
        "batch_size": 1000000,
        "default": {
            "input_price": input_price,
            "output_price": output_price,
            "cache_price": cache_price,
            "context_max": 200000,
        },
    }


def _policy(state: str, name: str) -> dict[str, str]:
    return {"state": state, "terms": f"Enable access to the latest {name} model."}


def _chat_model(
    model_id: str,
    name: str,
    vendor: str,
    *,
    limits: dict[str, Any],
    supports: dict[str, Any],
    endpoints: list[str] | None,
    policy: str | None = "enabled",
    billing: dict[str, Any] | None = None,
    preview: bool = False,
    category: str = "versatile",
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": model_id,
        "name": name,
        "object": "model",
        "vendor": vendor,
        "version": model_id,
        "preview": preview,
        "model_picker_enabled": True,
        "model_picker_category": category,
        "is_chat_default": False,
        "is_chat_fallback": False,
    }
    if policy is not None:
        entry["policy"] = _policy(policy, name)
    entry["billing"] = billing or {"is_premium": False, "multiplier": 0}
    entry["capabilities"] = {
        "object": "model_capabilities",
        "type": "chat",
        "family": model_id,
        "tokenizer": "o200k_base",
        "limits": limits,
        "supports": supports,
    }
    if endpoints is not None:
        entry["supported_endpoints"] = endpoints
    return entry


_TOOLS = {"streaming": True, "tool_calls": True, "parallel_tool_calls": True, "vision": True}
_EFFORT = ["low", "medium", "high"]
_PREMIUM = {"is_premium": True, "multiplier": 1, "restricted_to": _RESTRICTED}


def _claude(
    model_id: str, name: str, *, adaptive: bool, policy: str = "enabled"
) -> dict[str, Any]:
    supports: dict[str, Any] = {**_TOOLS, "structured_outputs": True}
    if adaptive:
        supports["adaptive_thinking"] = True
    supports |= {"min_thinking_budget": 1024, "max_thinking_budget": 32000}
    if adaptive:
        supports["reasoning_effort"] = list(_EFFORT)
    return _chat_model(
        model_id,
        name,
        "Anthropic",
        limits={
            "max_context_window_tokens": 200000,
            "max_prompt_tokens": 168000,
            "max_output_tokens": 32000,
            "max_non_streaming_output_tokens": 16000,
            "vision": _vision(5),
        },
        supports=supports,
        endpoints=[CHAT, MESSAGES],
        policy=policy,
        billing={**_PREMIUM, "token_prices": _prices(300, 1500, 30)},
    )


def _gpt5(model_id: str, name: str, endpoints: list[str]) -> dict[str, Any]:
    return _chat_model(
        model_id,
        name,
        "OpenAI",
        limits={
            "max_context_window_tokens": 400000,
            "max_prompt_tokens": 272000,
            "max_output_tokens": 128000,
            "vision": _vision(1, (*_MEDIA, "image/gif")),
        },
        supports={**_TOOLS, "structured_outputs": True, "reasoning_effort": list(_EFFORT)},
        endpoints=endpoints,
        billing={**_PREMIUM, "token_prices": _prices(125, 1000, 13)},
        category="powerful",
    )


def _gemini(
    model_id: str, name: str, budgets: tuple[int, int], endpoints: list[str] | None
) -> dict[str, Any]:
    low, high = budgets
    return _chat_model(
        model_id,
        name,
        "Google",
        limits={
            "max_context_window_tokens": 200000,
            "max_prompt_tokens": 136000,
            "max_output_tokens": 64000,
            "vision": _vision(10),
        },
        supports={
            **_TOOLS,
            "min_thinking_budget": low,
            "max_thinking_budget": high,
            "reasoning_effort": list(_EFFORT),
        },
        endpoints=endpoints,
        billing={**_PREMIUM, "token_prices": _prices(200, 1200, 20)},
        preview=model_id.endswith("-preview"),
        category="powerful",
    )


def _gpt4(model_id: str, name: str, policy: str | None) -> dict[str, Any]:
    # 2025-style: no supported_endpoints, served on Chat Completions.
    return _chat_model(
        model_id,
        name,
        "Azure OpenAI",
        limits={
            "max_context_window_tokens": 128000,
            "max_prompt_tokens": 64000,
            "max_output_tokens": 16384,
            "vision": _vision(1),
        },
        supports={**_TOOLS, "structured_outputs": True},
        endpoints=None,
        policy=policy,
    )


_EMBEDDINGS_MODEL: dict[str, Any] = {
    "id": "text-embedding-3-small",
    "name": "Embedding V3 small",
    "object": "model",
    "vendor": "Azure OpenAI",
    "version": "text-embedding-3-small",
    "preview": False,
    "model_picker_enabled": False,
    "is_chat_default": False,
    "is_chat_fallback": False,
    "billing": {"is_premium": False, "multiplier": 0},
    "capabilities": {
        "object": "model_capabilities",
        "type": "embeddings",
        "family": "text-embedding-3-small",
        "tokenizer": "cl100k_base",
        "limits": {"max_inputs": 512},
        "supports": {"dimensions": True},
    },
}

_COMPLETION_MODEL: dict[str, Any] = {
    "id": "gpt-41-copilot",
    "name": "GPT-4.1 Copilot",
    "object": "model",
    "vendor": "Azure OpenAI",
    "version": "gpt-41-copilot",
    "preview": False,
    "model_picker_enabled": False,
    "billing": {"is_premium": False, "multiplier": 0},
    "capabilities": {
        "object": "model_capabilities",
        "type": "completion",
        "family": "gpt-41-copilot",
        "tokenizer": "o200k_base",
        "limits": {},
        "supports": {"streaming": True},
    },
}

_GPT_41 = _gpt4("gpt-4.1", "GPT-4.1", "enabled")

#: The entries of C{GET /models}, in the order served.  C{gpt-4o} has no
#: C{policy}, C{claude-opus-4.6} is disabled, and C{gpt-4.1} is listed twice
#: (the real catalog holds duplicate ids too).
CATALOG_2026: list[dict[str, Any]] = [
    _gpt4("gpt-4o", "GPT-4o", None),
    _GPT_41,
    _claude("claude-sonnet-4", "Claude Sonnet 4", adaptive=False),
    _EMBEDDINGS_MODEL,
    _claude("claude-sonnet-4.6", "Claude Sonnet 4.6", adaptive=True),
    _claude("claude-opus-4.6", "Claude Opus 4.6", adaptive=True, policy="disabled"),
    _gpt5("gpt-5.4", "GPT-5.4", [RESPONSES, RESPONSES_WS]),
    _gpt5("gpt-5.2", "GPT-5.2", [CHAT, RESPONSES, RESPONSES_WS]),
    _gemini("gemini-3.1-pro-preview", "Gemini 3.1 Pro", (256, 32000), [CHAT]),
    _gemini("gemini-2.5-pro", "Gemini 2.5 Pro", (128, 32768), None),
    _COMPLETION_MODEL,
    copy.deepcopy(_GPT_41),
]

#: The C{GET /models} answer.
MODELS: dict[str, Any] = {"object": "list", "data": CATALOG_2026}


def catalog_entry(model_id: str) -> dict[str, Any] | None:
    """The first catalog entry with this id, or L{None} when it is not listed."""
    for entry in CATALOG_2026:
        if entry["id"] == model_id:
            return entry
    return None


def _entry(model_id: str) -> dict[str, Any]:
    entry = catalog_entry(model_id)
    if entry is None:
        raise KeyError(model_id)
    return entry


def endpoints_of(model_id: str) -> tuple[str, ...] | None:
    """
    The C{supported_endpoints} a listed model advertises, in catalog order, or
    L{None} when its entry has none.

    @raise KeyError: the catalog does not list C{model_id}.
    """
    listed = _entry(model_id).get("supported_endpoints")
    return None if listed is None else tuple(listed)


def serves(model_id: str, endpoint: str) -> bool:
    """
    Whether the fake answers C{endpoint} (one of L{MODEL_ENDPOINTS}) for this
    model rather than refusing it: the advertised list, or when there is none
    Chat Completions for chat models and C{/embeddings} for embeddings models.
    Ids the catalog does not list are served everywhere, except
    L{UNKNOWN_MODEL_IDS}; disabled models nowhere.
    """
    if model_id in UNKNOWN_MODEL_IDS:
        return False
    entry = catalog_entry(model_id)
    if entry is None:
        return True
    if is_disabled(model_id):
        return False
    listed = entry.get("supported_endpoints")
    if listed is not None:
        return endpoint in listed
    kind = entry["capabilities"]["type"]
    return (kind, endpoint) in (("chat", CHAT), ("embeddings", EMBEDDINGS))


def is_disabled(model_id: str) -> bool:
    """Whether the model's policy is C{disabled} (absent policy means usable)."""
    entry = catalog_entry(model_id)
    policy = entry.get("policy") if entry is not None else None
    return isinstance(policy, dict) and policy.get("state") == "disabled"


def supports(model_id: str) -> dict[str, Any] | None:
    """The C{capabilities.supports} of a listed model, or L{None} when not listed."""
    entry = catalog_entry(model_id)
    return None if entry is None else dict(entry["capabilities"].get("supports", {}))


def token_prices(model_id: str) -> dict[str, Any] | None:
    """The default price tier of a listed model (AIUs per batch), if it has one."""
    entry = catalog_entry(model_id)
    prices = entry.get("billing", {}).get("token_prices") if entry is not None else None
    if not isinstance(prices, dict):
        return None
    return {"batch_size": prices["batch_size"], **prices["default"]}
