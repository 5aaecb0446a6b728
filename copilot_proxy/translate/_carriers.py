"""
Small rules the Chat Completions and Messages codecs share: how reasoning
carriers travel in a single string, token counts read defensively, tool
call arguments as an object, fresh ids.

A Claude signature is base64 and never contains C{@}; a Responses reasoning
item travels as C{"<encrypted>@<item id>"} (the convention of the editor
proxies), so one string field (Anthropic's C{signature}, Copilot Chat's
C{reasoning_opaque}) can carry either and the two stay apart.

Pure: values in, values out.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ._model import JSON, Reasoning, ReasoningDone


def count(value: Any) -> int:
    """A token count, or 0 for anything that is not a non-negative integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def new_id(prefix: str) -> str:
    """A fresh id such as C{toolu_...} or C{call_...}."""
    return f"{prefix}_{uuid.uuid4().hex}"


def text_of(value: Any) -> str:
    """A string value, or C{""} for anything else."""
    return value if isinstance(value, str) else ""


def as_dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def carrier_of(reasoning: Reasoning | ReasoningDone) -> str | None:
    """
    The one string that replays this reasoning: its Anthropic signature, or
    a Responses item as C{"<encrypted>@<id>"}; C{None} when it has neither.
    """
    if reasoning.signature:
        return reasoning.signature
    if reasoning.encrypted:
        return f"{reasoning.encrypted}@{reasoning.item_id or ''}"
    return None


def native_signature(reasoning: Reasoning) -> str | None:
    """The signature a Claude endpoint can verify, or C{None} (a Responses carrier is not one)."""
    signature = reasoning.signature
    if signature and "@" not in signature:
        return signature
    return None


def _split(carrier: str) -> tuple[str | None, str | None, str | None]:
    """The signature, encrypted content and item id in a carrier string."""
    if "@" not in carrier:
        return carrier, None, None
    encrypted, _, item_id = carrier.rpartition("@")
    return None, encrypted or None, item_id or None


def reasoning_of(text: str, carrier: str | None) -> Reasoning:
    """The neutral reasoning of a thinking text and its carrier string, if any."""
    if not carrier:
        return Reasoning(text=text)
    signature, encrypted, item_id = _split(carrier)
    return Reasoning(text=text, signature=signature, encrypted=encrypted, item_id=item_id)


def done_of(carrier: str | None) -> ReasoningDone:
    """The end of a reasoning block whose carrier string (if any) came with it."""
    if not carrier:
        return ReasoningDone()
    signature, encrypted, item_id = _split(carrier)
    return ReasoningDone(signature=signature, encrypted=encrypted, item_id=item_id)


def arguments_object(arguments: str) -> JSON:
    """
    Tool call arguments as the object Anthropic's C{tool_use.input} must be:
    C{{}} for none, the text kept under C{_raw_arguments} when it is not a
    JSON object.
    """
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def arguments_text(value: Any) -> str:
    """Tool call arguments as JSON text, whether they came as text or as an object."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)
