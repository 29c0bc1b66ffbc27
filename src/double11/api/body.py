"""Reading a JSON request body: its content type and a size limit kept while reading.

Each check is a function of header values and `receive`, so the Starlette routes and
the raw ASGI fast path (`fastpath.py`) share one implementation.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Receive

from double11.api.problems import ProblemError


def _too_large(limit: int) -> ProblemError:
    return ProblemError(413, "Content Too Large", f"the body is larger than {limit} bytes")


def check_json_type(declared: str | None) -> None:
    """Refuse a Content-Type that is not JSON (`application/json` or `application/*+json`)."""
    if declared == "application/json":  # what nearly every client sends, taken at once
        return
    media_type = (declared or "").partition(";")[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    said = f"got {declared!r}" if declared else "no Content-Type was sent"
    raise ProblemError(415, "Unsupported Media Type", f"send application/json; {said}")


def require_json(request: Request) -> None:
    """Refuse a body that is not declared as JSON (`application/json` or `application/*+json`)."""
    check_json_type(request.headers.get("content-type"))


async def receive_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body from `receive`, refused with 413 as soon as it is known to pass `limit`.

    `declared` is the Content-Length header's value, if one was sent. A declared
    length over the limit is refused before anything is read; the bytes are
    counted as they arrive too, because a chunked body declares no length and a
    client may send more than it declared.
    """
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ProblemError(400, "Bad Request", "Content-Length is not a number") from None
        if length > limit:
            raise _too_large(limit)
    # The ASGI messages are read directly: a small body comes in one message,
    # which is returned as it is, with no copy and no stream machinery.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ProblemError(400, "Bad Request", "the client went away mid-body")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to pass `limit` bytes."""
    return await receive_body(request.receive, request.headers.get("content-length"), limit)


async def read_json_body(request: Request, limit: int) -> bytes:
    """Check the content type, then read the body within `limit`."""
    require_json(request)
    return await read_body(request, limit)
