"""Running the HTTP API under uvicorn, in one process or several workers.

uvicorn starts each worker by importing `app_factory`, so the settings travel
in one environment variable as JSON; the engine is built when the worker's
event loop starts (stores open asynchronously), never at import time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Any

from double11.bootstrap import build_engine, record_campaign_version
from double11.campaign_file import parse_campaign, read_campaign
from double11.runtime import settle_heap
from double11.settings import Settings

SETTINGS_ENV = "DOUBLE11_SERVE_SETTINGS"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def settings_to_env(settings: Settings) -> str:
    """Serialise settings for worker processes."""
    return json.dumps(
        {
            "campaign_path": settings.campaign_path,
            "db_url": settings.db_url,
            "redis_url": settings.redis_url,
            "now": settings.now.isoformat() if settings.now else None,
            "clock_speed": settings.clock_speed,
            "now_read_at": settings.now_read_at.isoformat() if settings.now_read_at else None,
            "max_ahead_s": settings.max_ahead.total_seconds(),
            "body_limit": settings.body_limit,
            "api_keys": settings.api_keys,
            "sqlite_synchronous": settings.sqlite_synchronous,
        }
    )


def settings_from_env(text: str) -> Settings:
    raw = json.loads(text)
    return Settings(
        campaign_path=raw["campaign_path"],
        db_url=raw["db_url"],
        redis_url=raw["redis_url"],
        now=datetime.fromisoformat(raw["now"]) if raw["now"] else None,
        clock_speed=raw["clock_speed"],
        now_read_at=datetime.fromisoformat(raw["now_read_at"]) if raw["now_read_at"] else None,
        max_ahead=timedelta(seconds=raw["max_ahead_s"]),
        body_limit=raw["body_limit"],
        api_keys=dict(raw["api_keys"]),
        sqlite_synchronous=raw["sqlite_synchronous"],
    )


class EngineApp:
    """An ASGI app that builds the engine and the API on lifespan startup and closes them after."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: ASGIApp | None = None
        self._close: Callable[[], Awaitable[None]] | None = None

    async def startup(self) -> None:
        from double11.api.app import create_app

        source = read_campaign(self.settings.campaign_path)
        campaign = parse_campaign(source)
        engine = await build_engine(self.settings, campaign)
        # Every run of a campaign file is on record, so a change can be traced to who
        # served it and when, and `double11 versions --show` gives it back to serve again.
        await record_campaign_version(engine.stores, campaign, source)
        self.app = create_app(engine, self.settings)
        self._close = engine.stores.close
        settle_heap()

    async def shutdown(self) -> None:
        if self._close is not None:
            await self._close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.app is None:
            raise RuntimeError("the server has not started; lifespan must run first")
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def app_factory() -> EngineApp:
    """Entry point uvicorn imports in every worker."""
    return EngineApp(settings_from_env(os.environ[SETTINGS_ENV]))
