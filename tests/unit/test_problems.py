"""Request bodies' validation errors as field errors: the type's words, else msgspec's."""

from __future__ import annotations

from datetime import time

import msgspec
import pytest

from double11.api.problems import FieldError, field_error, invalid_body
from double11.api.schemas import CustomerIn


class Alarm(msgspec.Struct):
    """A body with a field of a type `expectation` has no words for."""

    ring_at: time


def error_of(body: bytes, kind: type) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.json.decode(body, type=kind)
    return raised.value


def test_a_field_is_said_in_the_words_of_its_type() -> None:
    error = error_of(b'{"risk_tolerance": "C9"}', CustomerIn)
    assert field_error(error, CustomerIn) == FieldError(
        "risk_tolerance", "must be one of C1, C2, C3, C4, C5"
    )


def test_a_field_whose_type_has_no_words_keeps_msgspecs_message() -> None:
    error = error_of(b'{"ring_at": 7}', Alarm)
    assert field_error(error, Alarm) == FieldError("ring_at", "Expected `time`, got `int`")


def test_the_problem_names_the_field_in_its_detail_and_its_errors() -> None:
    problem = invalid_body(error_of(b'{"age": "30"}', CustomerIn), CustomerIn)
    assert problem.status == 422
    assert problem.detail == "age: must be a whole number from 0 to 150"
    assert problem.errors == [FieldError("age", "must be a whole number from 0 to 150")]
