"""GET /healthz: answers 200 only when every store answers."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import Response

from double11.api.schemas import HealthOut, encoder
from double11.engine.pipeline import Engine
from double11.errors import Unavailable

logger = logging.getLogger(__name__)

# An id no bank system sends: looking it up touches each store and finds nothing.
PROBE_ID = "double11:healthz"
# A store slower than this is as good as down to a load balancer.
HEALTH_TIMEOUT_S = 2.0
_OK = encoder.encode(HealthOut("ok"))


class HealthEndpoint:
    """Asks each store a cheap question."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def get(self, request: Request) -> Response:
        """200 when the customer store, the event log and the limit book all answer."""
        stores = self.engine.stores
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                await stores.customers.get_customer(PROBE_ID)
                await stores.events.find_event(PROBE_ID)
                await stores.limits.usage()
        except Exception as exc:
            logger.warning("health check failed: %s", type(exc).__name__)
            raise Unavailable(f"a store did not answer: {type(exc).__name__}") from exc
        return Response(_OK, media_type="application/json")
