"""API keys and roles: who may call which route.

Keys come from `DOUBLE11_API_KEYS` as `key:role,key:role`. A key is sent as
`Authorization: Bearer KEY` or `X-API-Key: KEY`. A producer (a bank system)
posts events and profiles, a reader looks at wallets and the campaign, an
admin does both.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from enum import StrEnum

from starlette.requests import Request

from double11.api.problems import ProblemError

API_KEYS_ENV = "DOUBLE11_API_KEYS"
# RFC 6750 b64token characters, so every key can be sent as a Bearer token.
_KEY = re.compile(r"[A-Za-z0-9._~+/=-]+")


class Role(StrEnum):
    """What a key may do."""

    PRODUCER = "producer"
    READER = "reader"
    ADMIN = "admin"


_ROLES = frozenset(r.value for r in Role)
PRODUCERS = frozenset({Role.PRODUCER, Role.ADMIN})
READERS = frozenset({Role.READER, Role.ADMIN})


def _entry_problem(key: str, role: str) -> str | None:
    """What is wrong with one key:role pair, said without repeating the key, or None."""
    if not _KEY.fullmatch(key):
        return (
            "has an empty key or one with characters other than letters, digits and . _ ~ + / = -"
        )
    if role not in _ROLES:
        return f"has role {role!r}; roles are {', '.join(sorted(_ROLES))}"
    return None


def parse_api_keys(text: str) -> dict[str, str]:
    """Parse `key:role,key:role` into {key: role}; raise ValueError naming the bad entry.

    Messages say which entry is wrong but never repeat a key, since keys are secrets.
    """
    keys: dict[str, str] = {}
    if not text.strip():
        return keys
    for number, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        where = f"entry {number}"
        if not entry:
            raise ValueError(f"{where} is empty (a stray comma?)")
        key, colon, role = entry.rpartition(":")
        if not colon:
            raise ValueError(f"{where} has no ':role'; write key:role")
        problem = _entry_problem(key, role)
        if problem is not None:
            raise ValueError(f"{where} {problem}")
        if key in keys:
            raise ValueError(f"{where} repeats the key of an earlier entry")
        keys[key] = role
    return keys


def api_keys_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The API keys `DOUBLE11_API_KEYS` configures, or none when it is unset."""
    return parse_api_keys(environ.get(API_KEYS_ENV, ""))


def _digest(key: str) -> bytes:
    # Comparing digests gives equal-length inputs, so the time taken says nothing
    # about how long the real key is or how much of it a guess got right.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


_CHALLENGE = 'Bearer realm="double11"'


def _unauthorized(detail: str, *, invalid: bool) -> ProblemError:
    challenge = f'{_CHALLENGE}, error="invalid_token"' if invalid else _CHALLENGE
    return ProblemError(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


class KeyRing:
    """The configured keys, checked in constant time."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        for key, role in keys.items():
            problem = _entry_problem(key, role)
            if problem is not None:
                raise ValueError(f"an API key {problem}")
        self._entries = tuple((_digest(key), Role(role)) for key, role in keys.items())

    def role_of(self, presented: str) -> Role | None:
        """The role of a presented key, or None; every key is compared, whatever matches."""
        digest = _digest(presented)
        found: Role | None = None
        for known, role in self._entries:
            if hmac.compare_digest(digest, known):
                found = role
        return found

    def authorize(self, request: Request, allowed: frozenset[Role]) -> Role:
        """The caller's role if it is allowed; else raise a 401 or 403 problem."""
        headers = request.headers
        return self.check(
            presented_key(headers.get("authorization"), headers.get("x-api-key")), allowed
        )

    def check(self, presented: str | None, allowed: frozenset[Role]) -> Role:
        """The role of a key from `presented_key` if it is allowed; else raise a 401 or 403."""
        if presented is None:
            raise _unauthorized(
                "send an API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                invalid=False,
            )
        role = self.role_of(presented)
        if role is None:
            raise _unauthorized("the API key is not valid", invalid=True)
        if role not in allowed:
            wanted = " or ".join(sorted(r.value for r in allowed))
            raise ProblemError(403, "Forbidden", f"this route needs the role {wanted}")
        return role


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request presents, from its Authorization and X-API-Key headers; None if none.

    An Authorization header of another scheme counts as a key that matches nothing ("").
    """
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if api_key is not None and api_key.strip():
        return api_key.strip()
    return "" if authorization is not None else None
