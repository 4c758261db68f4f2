"""A text field's limits, written once (domain.fields.Text): the domain's rule, the
request schema's pattern and the 422's words agree on every value."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from domain.errors import InvalidValue
from domain.fields import Text
from entrypoints.http.problems import validation_problem
from entrypoints.http.schemas import text

FIELDS = [Text("name", 1), Text("name", 2), Text("name", 5, min_length=3), Text("name", 100)]
# Blanks, letters, NUL and characters some engines count as blanks and others do not.
VALUES = st.text(alphabet=st.sampled_from(" \t\r\nab\x00\x1c\u00a0\u2028é"), max_size=12)


def _valid(limits: Text, value: str) -> bool:
    try:
        limits.validate(value)
    except InvalidValue:
        return False
    return True


@pytest.mark.parametrize("limits", FIELDS, ids=repr)
@given(value=VALUES)
def test_the_schema_accepts_exactly_what_the_domain_accepts(limits: Text, value: str) -> None:
    class Body(BaseModel):
        name: Annotated[str, text(limits)]

    try:
        Body(name=value)
        accepted = True
    except ValidationError:
        accepted = False

    assert accepted == _valid(limits, value) == bool(re.fullmatch(limits.pattern, value))


def test_a_value_is_stored_trimmed_and_a_refusal_names_the_field() -> None:
    assert Text("name", 5).validate(" \tAda \n") == "Ada"
    with pytest.raises(InvalidValue, match="must be 1-5 characters"):
        Text("name", 5).validate("Ada Lovelace")
    with pytest.raises(InvalidValue, match="NUL"):
        Text("name", 5).validate("a\x00b")
    with pytest.raises(ValueError, match="min_length"):
        Text("name", 2, min_length=3)


def test_a_refused_value_is_told_the_rule_in_words_not_the_pattern() -> None:
    class Body(BaseModel):
        name: Annotated[str, text(Text("name", 100))]

    with pytest.raises(ValidationError) as refused:
        Body(name="   ")

    problem = validation_problem([dict(error) for error in refused.value.errors()])
    assert b'"msg":"must be 1-100 characters"' in problem.body
    assert b"[^" not in problem.body
