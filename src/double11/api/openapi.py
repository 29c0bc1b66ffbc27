"""The OpenAPI 3.1 document: schemas generated from the msgspec Structs, paths written here."""

from __future__ import annotations

from typing import Any

import msgspec

import double11
from double11.api.customers import AUM_STRING
from double11.api.events import REPLAY_HEADER
from double11.api.problems import PROBLEM_JSON, Problem
from double11.api.schemas import (
    MAX_ID_LENGTH,
    CampaignOut,
    CustomerIn,
    CustomerOut,
    EventIn,
    HealthOut,
    WalletOut,
)
from double11.domain.decision import Decision

JSON = "application/json"
_SCHEMAS = "#/components/schemas/{name}"
_RESPONSES = "#/components/responses/"
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyHeader": []}]

_ERRORS = {
    400: ("MalformedJson", "The body is not valid JSON."),
    401: ("Unauthorized", "No API key, or one that is not valid."),
    403: ("Forbidden", "The API key's role may not use this route."),
    404: ("NotFound", "No such resource."),
    409: ("Conflict", "The event id was already used with a different body."),
    413: ("ContentTooLarge", "The body is larger than the server accepts."),
    415: ("UnsupportedMediaType", "The body is not declared as application/json."),
    422: ("InvalidInput", "The body or a field is invalid; `errors` names each field."),
    503: ("Unavailable", "A store failed; nothing was written. Retry after Retry-After."),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _SCHEMAS.format(name=name)}


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def _responses(ok: dict[str, Any], errors: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = dict(ok)
    for status in errors:
        out[str(status)] = {"$ref": _RESPONSES + _ERRORS[status][0]}
    return out


def _body(schema: str, description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {JSON: {"schema": _ref(schema)}},
    }


_CUSTOMER_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The bank's customer id.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
}


def _paths() -> dict[str, Any]:
    replay_header = {
        REPLAY_HEADER: {
            "description": "`true` when this is the decision of an event already decided.",
            "schema": {"type": "string", "enum": ["true"]},
        }
    }
    profile = _ref("CustomerOut")
    return {
        "/v1/events": {
            "post": {
                "operationId": "submitEvent",
                "summary": "Decide one customer event, exactly once",
                "description": (
                    "Answers 200 with the decision, for a new event and for a replay alike; "
                    f"a replay carries `{REPLAY_HEADER}: true` and the identical body. "
                    "Unknown event types and unknown customers are 422."
                ),
                "tags": ["events"],
                "security": SECURITY,
                "requestBody": _body("EventIn", "The event."),
                "responses": _responses(
                    {"200": _json(_ref("Decision"), "The decision.", headers=replay_header)},
                    (400, 401, 403, 409, 413, 415, 422, 503),
                ),
            }
        },
        "/v1/customers/{id}": {
            "put": {
                "operationId": "putCustomer",
                "summary": "Create or replace a customer profile",
                "tags": ["customers"],
                "security": SECURITY,
                "parameters": [_CUSTOMER_ID],
                "requestBody": _body("CustomerIn", "The profile."),
                "responses": _responses(
                    {
                        "200": _json(profile, "The profile replaced one that was there."),
                        "201": _json(
                            profile,
                            "The profile was created.",
                            headers={
                                "Location": {
                                    "description": "The customer's path.",
                                    "schema": {"type": "string"},
                                }
                            },
                        ),
                    },
                    (400, 401, 403, 413, 415, 422, 503),
                ),
            }
        },
        "/v1/customers/{id}/wallet": {
            "get": {
                "operationId": "getWallet",
                "summary": "A customer's points, perks, coupons and lottery tickets",
                "tags": ["customers"],
                "security": SECURITY,
                "parameters": [_CUSTOMER_ID],
                "responses": _responses(
                    {"200": _json(_ref("WalletOut"), "The wallet, folded from the ledger.")},
                    (401, 403, 404, 503),
                ),
            }
        },
        "/v1/campaign": {
            "get": {
                "operationId": "getCampaign",
                "summary": "The campaign, its current phase and every mechanic's usage",
                "tags": ["campaign"],
                "security": SECURITY,
                "responses": _responses(
                    {"200": _json(_ref("CampaignOut"), "The campaign.")}, (401, 403, 503)
                ),
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Whether every store answers",
                "tags": ["operations"],
                "security": [],
                "responses": _responses(
                    {"200": _json(_ref("HealthOut"), "Every store answered.")}, (503,)
                ),
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Metrics in Prometheus text format",
                "tags": ["operations"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    }
                },
            }
        },
    }


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API."""
    _, schemas = msgspec.json.schema_components(
        [EventIn, Decision, CustomerIn, CustomerOut, WalletOut, CampaignOut, HealthOut, Problem],
        ref_template=_SCHEMAS,
    )
    # msgspec describes a Decimal as a decimal string; a profile's aum may be a JSON
    # number too, and is then read from its digits, exactly.
    schemas["CustomerIn"]["properties"]["aum"] = {
        "description": "Assets under management in yuan, >= 0, at most two decimal places.",
        "anyOf": [
            {"type": "string", "pattern": f"^{AUM_STRING.pattern}$"},
            {"type": "number", "minimum": 0, "exclusiveMaximum": 1e16},
        ],
        "default": "0",
    }
    # Other fields of a profile are kept; they may be scalars or lists of scalars.
    scalar = {"type": ["string", "number", "boolean", "null"]}
    extra = {"anyOf": [scalar, {"type": "array", "items": scalar}]}
    schemas["CustomerIn"]["additionalProperties"] = extra
    schemas["CustomerOut"]["additionalProperties"] = extra
    problem = {"schema": _ref("Problem")}
    responses: dict[str, Any] = {}
    for status, (name, description) in _ERRORS.items():
        responses[name] = {"description": description, "content": {PROBLEM_JSON: problem}}
        if status == 401:
            responses[name]["headers"] = {
                "WWW-Authenticate": {
                    "description": "The Bearer challenge.",
                    "schema": {"type": "string"},
                }
            }
        if status == 503:
            responses[name]["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "string"},
                }
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "double11",
            "version": double11.__version__,
            "description": (
                "Real-time decisions for a bank's Singles' Day campaign. Errors are RFC 9457 "
                "problem details. Send an API key as `Authorization: Bearer KEY` or "
                "`X-API-Key: KEY`: producers post events and profiles, readers read wallets "
                "and the campaign, admins do both."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
