"""
C{POST /v1/messages/count_tokens}: answered by the proxy itself, with an
estimate, since the Copilot API has no such call.
"""

from __future__ import annotations

import json
from typing import Any

from ..relay import RelayContext, record_end
from ..web import ProxyRequest, json_answer
from ..wire import BodyError, Outcome, anthropic_error, parse_json_body, safe_model
from . import _anthropic
from ._anthropic import TranslationError


class CountTokens:
    """One token-count request; nothing goes upstream."""

    def __init__(self, request: ProxyRequest, context: RelayContext) -> None:
        self._request = request
        self._context = context

    def start(self) -> None:
        request = self._request
        started = self._context.reactor.seconds()
        content: Any = request.content
        content.seek(0)
        body: bytes = content.read()
        model = None
        try:
            payload = parse_json_body(body)
            if isinstance(payload, dict):
                model = safe_model(payload.get("model"))
            count = _anthropic.estimate_tokens(payload)
        except (TranslationError, BodyError) as e:
            answer = json_answer(request, 400, anthropic_error(400, str(e)))
            outcome = Outcome.REFUSED
        except Exception:
            # Whatever else a hostile body trips in the estimate is its fault.
            message = "the request body is not a Messages request this proxy can read"
            answer = json_answer(request, 400, anthropic_error(400, message))
            outcome = Outcome.REFUSED
        else:
            answer = json_answer(request, 200, json.dumps({"input_tokens": count}).encode())
            outcome = Outcome.COMPLETE
        request.write(answer)
        request.finish()
        record_end(
            request,
            outcome,
            self._context.metrics,
            received=len(body),
            duration=self._context.reactor.seconds() - started,
            model=model,
            recent=self._context.recent,
        )

    def abort(self) -> None:
        """Nothing to cut: the answer is written at once."""
