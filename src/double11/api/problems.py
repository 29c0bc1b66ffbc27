"""Errors as RFC 9457 problem details: the one place that maps errors to HTTP statuses.

Every error response of the API is `application/problem+json`. Errors the API
itself finds (authentication, content type, body size, JSON syntax) are raised
as `ProblemError`; errors from the engine are `Double11Error`s and get their
status from `STATUSES` here, so nothing below the API knows about HTTP.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from double11.domain.errors import RequestError
from double11.errors import (
    Conflict,
    Double11Error,
    EventIdReused,
    EventTooFarAhead,
    InvalidInput,
    NotFound,
    Unavailable,
    UnknownCustomer,
    UnknownEventType,
)
from double11.validation import expectation, read_problem

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
ABOUT_BLANK = "about:blank"
# A client may retry an unavailable store after this many seconds.
RETRY_AFTER_SECONDS = "1"


class FieldError(msgspec.Struct, frozen=True):
    """One invalid field of a request, by its path (`data.amount`, `segments[0]`)."""

    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem details object, with `errors` for validation problems."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] = []


class ProblemError(Exception):
    """An error the API answers with a problem; raised by the API's own checks."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type_: str = ABOUT_BLANK,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.errors = errors or []
        self.headers = dict(headers or {})


def problem_type(slug: str) -> str:
    """The stable identifier of one kind of problem; clients may switch on it."""
    return f"urn:double11:problem:{slug}"


# Status and problem type for each error the engine raises; subclasses come before their
# bases, so the first match is the most specific.
STATUSES: dict[type[Double11Error], tuple[int, str]] = {
    EventIdReused: (409, "event-id-reused"),
    Conflict: (409, "conflict"),
    UnknownEventType: (422, "unknown-event-type"),
    UnknownCustomer: (422, "unknown-customer"),
    EventTooFarAhead: (422, "event-too-far-ahead"),
    InvalidInput: (422, "invalid-input"),
    NotFound: (404, "not-found"),
    Unavailable: (503, "unavailable"),
}


def from_error(exc: Double11Error) -> ProblemError:
    """The problem for an error the engine raised."""
    status, slug = next(
        (found for cls, found in STATUSES.items() if isinstance(exc, cls)), (500, "internal")
    )
    errors: list[FieldError] = []
    if isinstance(exc, RequestError):
        detail = str(exc)  # "field: what is wrong", or just what is wrong
        if exc.field:
            errors.append(FieldError(exc.field, exc.detail))
    else:
        detail = str(exc) or exc.title
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    return ProblemError(
        status, exc.title, detail, type_=problem_type(slug), errors=errors, headers=headers
    )


def field_error(exc: msgspec.ValidationError, body: type) -> FieldError:
    """Translate msgspec's "Expected `str`, got `int` - at `$.data.amount`" to a field error.

    `body` is the type the request was decoded to: what a field must be is said
    from it, in the words the campaign file's problems use, and msgspec's own
    text is kept only where the type says nothing.
    """
    problem = read_problem(str(exc))
    if problem.missing is not None:
        return FieldError(problem.field, "is required")
    if problem.unknown is not None:
        return FieldError(problem.field, "is not a known field")
    message = expectation(body, problem.path) or problem.message
    # An error about the whole body (e.g. an array where an object belongs) has no path.
    return FieldError(problem.path or "body", message)


def invalid_body(exc: msgspec.ValidationError, body: type) -> ProblemError:
    """The 422 problem for a body that is JSON but not of the type `body`."""
    error = field_error(exc, body)
    return ProblemError(
        422,
        "invalid input",
        f"{error.field}: {error.message}",
        type_=problem_type("invalid-input"),
        errors=[error],
    )


def malformed_json(exc: msgspec.DecodeError) -> ProblemError:
    """The 400 problem for a body that is not JSON at all."""
    return ProblemError(
        400, "malformed JSON", f"the body is not valid JSON: {exc}", type_=problem_type("malformed")
    )


_problem_encoder = msgspec.json.Encoder()


def problem_response(problem: ProblemError, request: Request) -> Response:
    """Render a problem as `application/problem+json`."""
    body = Problem(
        type=problem.type,
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=request.url.path,
        errors=problem.errors,
    )
    return Response(
        _problem_encoder.encode(body),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


INTERNAL = ProblemError(500, "Internal Server Error", "the server failed; nothing is promised")


def error_response(exc: Exception, request: Request, template: str) -> Response:
    """The problem response for an error an endpoint raised on the route `template`.

    An error that is neither a `ProblemError` nor a `Double11Error` is a 500, logged.
    """
    if isinstance(exc, ProblemError):
        return problem_response(exc, request)
    if isinstance(exc, Double11Error):
        return problem_response(from_error(exc), request)
    # The frames, not the message: a store's message may quote the customer data
    # it was given (SQL parameters), and personal data is never logged.
    logger.error(
        "unexpected %s answering %s %s\n%s",
        type(exc).__name__,
        request.method,
        template,
        "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
    )
    return problem_response(INTERNAL, request)
