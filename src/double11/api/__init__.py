"""The HTTP API: `create_app(engine, settings)` builds the ASGI app; nothing runs at import."""

from double11.api.app import create_app
from double11.api.auth import API_KEYS_ENV, Role, api_keys_from_env, parse_api_keys

__all__ = ["API_KEYS_ENV", "Role", "api_keys_from_env", "create_app", "parse_api_keys"]
