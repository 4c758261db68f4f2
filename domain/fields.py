"""The limits of a text field, written once.

A resource declares its field as a ``Text`` in its domain module; the use cases
validate with it, the table sizes its column with ``max_length``, and the request schema
publishes ``pattern`` (``entrypoints.http.schemas.text``). The pattern accepts exactly
what ``validate`` accepts, surrounding blanks included, so the OpenAPI document and the
rule cannot disagree: a request the document allows is never refused by the domain.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import InvalidValue

# The blanks trimmed around a value: ASCII ones, spelled out, so that Python, the JSON
# Schema pattern and every client's regex engine agree on them.
BLANKS = " \t\r\n"
_BLANK = "[ \\t\\r\\n]"
_KEPT = "[^ \\t\\r\\n\\x00]"  # a character a value may start or end with
_ANY = "[^\\x00]"


@dataclass(frozen=True)
class Text:
    """A text field: ``min_length`` to ``max_length`` characters once the blanks around
    it are trimmed, and no NUL character."""

    field: str
    max_length: int
    min_length: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError("a Text needs 1 <= min_length <= max_length")

    @property
    def rule(self) -> str:
        """The rule in words, as an error message says it."""
        return f"must be {self.min_length}-{self.max_length} characters"

    def validate(self, value: str) -> str:
        """The value as stored (trimmed); ``InvalidValue`` naming the field otherwise."""
        value = value.strip(BLANKS)
        if not self.min_length <= len(value) <= self.max_length:
            raise InvalidValue(self.field, self.rule)
        if "\x00" in value:
            raise InvalidValue(self.field, "must not contain a NUL character")
        return value

    @property
    def pattern(self) -> str:
        """A regular expression (JSON Schema's dialect) for exactly the valid values."""
        if self.max_length == 1:
            inner = _KEPT
        else:
            middle = f"{_ANY}{{{self.min_length - 2 if self.min_length > 2 else 0},"
            middle += f"{self.max_length - 2}}}"
            inner = f"{_KEPT}{middle}{_KEPT}"
            if self.min_length == 1:
                inner = f"{_KEPT}(?:{middle}{_KEPT})?"
        return f"^{_BLANK}*{inner}{_BLANK}*$"
