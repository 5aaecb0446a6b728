"""
Facts about a request for its access log line, computed once per request.

Pure: the request body and headers in, short safe strings out.  Nothing here
may return a secret or let a client write arbitrary text into the log.
"""

from __future__ import annotations

import json
import os
import re

# Bodies up to this size are parsed as JSON to find the model; a larger body
# is searched for its first "model" member instead, so a long conversation
# does not cost a full parse just for a log field.
PARSE_LIMIT = 64 * 1024

_MODEL_MEMBER = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')
_SAFE_MODEL = re.compile(r"[A-Za-z0-9._:/@+-]{1,100}")


def new_request_id() -> str:
    """A fresh, unguessable id that ties log lines of one request together."""
    # 128 random bits as hex, the shape uuid4().hex had, for a fifth of its cost.
    return os.urandom(16).hex()


def model_from_body(body: bytes, content_type: bytes | None) -> str | None:
    """
    The model a JSON request asks for, or L{None}.

    Only a request whose content type is JSON (or missing, as some clients
    send) is looked at.  The value is returned only if it looks like a model
    id (letters, digits and C{._:/@+-}, at most 100 characters), so a client
    cannot put arbitrary text in the log.
    """
    if not body or (content_type is not None and b"json" not in content_type.lower()):
        return None
    model: object = None
    if len(body) <= PARSE_LIMIT:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if isinstance(document, dict):
            model = document.get("model")
    else:
        found = _MODEL_MEMBER.search(body)
        if found is not None:
            model = found.group(1).decode("utf-8", "replace")
    return safe_model(model)


def safe_model(model: object) -> str | None:
    """C{model} if it is a string that looks like a model id, else L{None}."""
    if isinstance(model, str) and _SAFE_MODEL.fullmatch(model):
        return model
    return None


def path_for_log(uri: bytes) -> str:
    """The request path with query parameter names but not their values."""
    path, _, query = uri.partition(b"?")
    text = path.decode("ascii", "replace")
    if query:
        names = [field.partition(b"=")[0] for field in query.split(b"&") if field]
        text += "?" + "&".join(n.decode("ascii", "replace") for n in names)
    return text
