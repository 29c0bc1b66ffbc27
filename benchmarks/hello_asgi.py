"""The baseline: a bare ASGI hello-world, no framework, served by the same uvicorn.

    uv run uvicorn benchmarks.hello_asgi:app --port 8000 --log-level warning --no-access-log

It reads the whole request body (so a POSTed event costs it what it costs the
real server to receive one) and answers a fixed 200.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
BODY = b"Hello, world!"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
}


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Answer every HTTP request with 200 "Hello, world!"; accept lifespan events."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = scope["type"] == "http"
    while more:
        more = (await receive()).get("more_body", False)
    await send(START)
    await send({"type": "http.response.body", "body": BODY})
