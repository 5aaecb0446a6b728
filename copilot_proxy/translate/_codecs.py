"""The codec of each wire shape, by shape."""

from __future__ import annotations

from ._model import Codec, Shape

_CODECS: dict[Shape, Codec] = {}


def codec_for(shape: Shape) -> Codec:
    """
    The codec of C{shape}.  Codecs hold no state (streams get their own
    decoders and encoders), so one of each serves every request.
    """
    if not _CODECS:
        from ._chat import ChatCodec
        from ._messages import MessagesCodec
        from ._responses import ResponsesCodec

        _CODECS.update(
            {
                Shape.CHAT: ChatCodec(),
                Shape.RESPONSES: ResponsesCodec(),
                Shape.MESSAGES: MessagesCodec(),
            }
        )
    return _CODECS[shape]
