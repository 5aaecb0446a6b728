"""
Which Copilot model serves an Anthropic-style model name.

Anthropic clients ask for dated ids (C{claude-sonnet-4-20250514}); the Copilot
API lists undated ones (C{claude-sonnet-4}, C{claude-sonnet-4.5}).  Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_DATE = re.compile(r"-(\d{8}|latest)$")


def _normal(name: str) -> str:
    # Copilot writes versions with dots (claude-sonnet-4.5), Anthropic with
    # dashes (claude-sonnet-4-5).
    return name.lower().replace(".", "-")


def resolve_model(name: str, known: Iterable[str], model_map: Mapping[str, str]) -> str | None:
    """
    The Copilot model id for C{name}, or L{None} when there is none.

    In order: an explicit C{--model-map} entry; a listed id equal to the
    name; else, after dropping a date (C{-20250514}) or C{-latest} suffix, the
    longest listed id that the name starts with (on a C{-} boundary, dots and
    dashes alike).
    """
    if name in model_map:
        return model_map[name]
    ids = list(known)
    if name in ids:
        return name
    wanted = _normal(_DATE.sub("", name))
    best: str | None = None
    for model_id in ids:
        candidate = _normal(model_id)
        if wanted == candidate or wanted.startswith(candidate + "-"):
            if best is None or len(model_id) > len(best):
                best = model_id
    return best


def parse_model_map(text: str) -> tuple[str, str]:
    """
    Parse one C{--model-map from=to}.

    @raise ValueError: with a message for the user.
    """
    source, equals, target = text.partition("=")
    source, target = source.strip(), target.strip()
    if not equals or not source or not target:
        raise ValueError(f"--model-map {text!r} must look like from=to")
    return source, target
