"""
Which upstream endpoint serves a model, from what the catalog lists.

The Copilot API of 2026 lists, per model, the endpoints it accepts
(C{supported_endpoints}); a model asked on another endpoint gets a 400.  The
rule: the client's own shape when the model lists it (passthrough), else the
listed endpoint that keeps the most (native Messages, then Responses, then
Chat Completions).  A model that lists nothing is a chat model of 2025:
Chat Completions.  Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..translate import Capabilities, Shape

#: Preference among endpoints a model lists, when the client's is not one.
PREFERENCE = (Shape.MESSAGES, Shape.RESPONSES, Shape.CHAT)

_ENDPOINT_IN_TEXT = re.compile(r"(/chat/completions|/responses|/v1/messages|responses api)", re.I)


@dataclass(frozen=True)
class ModelEntry:
    """
    One model of the catalog, as routing needs it.

    @ivar endpoints: the listed endpoints this proxy can use, in the
        catalog's order, or L{None} when the model lists none.
    @ivar listed: every listed endpoint as the catalog wrote it (for
        messages and C{/v1/models}).
    """

    id: str
    kind: str = "chat"
    vendor: str = ""
    endpoints: tuple[Shape, ...] | None = None
    listed: tuple[str, ...] = ()
    disabled: bool = False
    caps: Capabilities = field(default_factory=Capabilities)

    def usable(self) -> tuple[Shape, ...]:
        """The endpoints this model may be asked on."""
        if self.endpoints is not None:
            return self.endpoints
        return (Shape.CHAT,) if self.kind == "chat" else ()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _capabilities(entry: Mapping[str, Any]) -> tuple[str, Capabilities]:
    capabilities = entry.get("capabilities")
    capabilities = capabilities if isinstance(capabilities, dict) else {}
    supports = capabilities.get("supports")
    supports = supports if isinstance(supports, dict) else {}
    limits = capabilities.get("limits")
    limits = limits if isinstance(limits, dict) else {}
    efforts = supports.get("reasoning_effort")
    caps = Capabilities(
        reasoning_effort=tuple(e for e in efforts if isinstance(e, str))
        if isinstance(efforts, list)
        else (),
        min_thinking_budget=_int(supports.get("min_thinking_budget")),
        max_thinking_budget=_int(supports.get("max_thinking_budget")),
        adaptive_thinking=supports.get("adaptive_thinking") is True,
        max_output_tokens=_int(limits.get("max_output_tokens")),
    )
    kind = capabilities.get("type")
    return (kind if isinstance(kind, str) else "chat"), caps


def model_entry(raw: Any) -> ModelEntry | None:
    """One catalog entry, or L{None} for anything that is not one."""
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        return None
    kind, caps = _capabilities(raw)
    listed_raw = raw.get("supported_endpoints")
    endpoints: tuple[Shape, ...] | None = None
    listed: tuple[str, ...] = ()
    if isinstance(listed_raw, list):
        listed = tuple(e for e in listed_raw if isinstance(e, str))
        known = {s.value: s for s in Shape}
        endpoints = tuple(dict.fromkeys(known[e] for e in listed if e in known))
    policy = raw.get("policy")
    disabled = isinstance(policy, dict) and policy.get("state") == "disabled"
    vendor = raw.get("vendor")
    return ModelEntry(
        raw["id"],
        kind,
        vendor if isinstance(vendor, str) else "",
        endpoints,
        listed,
        disabled,
        caps,
    )


def parse_catalog(document: Any) -> dict[str, ModelEntry]:
    """The entries of a C{GET /models} answer by id (the first of duplicates)."""
    data = document.get("data") if isinstance(document, dict) else None
    entries: dict[str, ModelEntry] = {}
    for raw in data if isinstance(data, list) else ():
        entry = model_entry(raw)
        if entry is not None and entry.id not in entries:
            entries[entry.id] = entry
    return entries


def choose(
    client: Shape,
    entry: ModelEntry | None,
    refused: Iterable[Shape] = (),
    native: bool = True,
) -> Shape | None:
    """
    The endpoint to ask for a request of shape C{client}, or L{None} when no
    endpoint can serve it.

    @param entry: the model's catalog entry; L{None} when the catalog does
        not know it (then the client's shape, for the upstream to judge).
    @param refused: endpoints the upstream refused for this model already.
    @param native: whether an Anthropic client may go to native Messages
        (C{--messages-mode translate} says no).
    """
    if entry is None:
        return client
    refused = set(refused)
    usable = [e for e in entry.usable() if e not in refused]
    if not native and client is Shape.MESSAGES:
        usable = [e for e in usable if e is not Shape.MESSAGES] or usable
    if client in usable:
        return client
    for endpoint in PREFERENCE:
        if endpoint in usable:
            return endpoint
    return None


def is_endpoint_refusal(status: int, body: bytes) -> bool:
    """
    Whether an upstream answer says the model is not served on this endpoint
    (the 2026 notes' 1.6): a 400 whose code is C{unsupported_api_for_model}
    or C{model_not_supported} and whose message names an endpoint.  A plain
    "model not supported" names none: the model itself is unavailable.
    """
    if status != 400 or len(body) > 65536:
        return False
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return False
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        return False
    code, message = error.get("code"), error.get("message")
    return (
        code in ("unsupported_api_for_model", "model_not_supported")
        and isinstance(message, str)
        and _ENDPOINT_IN_TEXT.search(message) is not None
    )
