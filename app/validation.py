"""Checks of proposed values against HubSpot's schema, worded so an agent can correct itself."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from app.models import PropertyValue, hubspot_text
from app.schema import OWNER_PROPERTY, Schema, parse_moment

MAX_LISTED = 40


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: `field` is its JSON path, `allowed` what would be accepted."""

    field: str
    message: str
    allowed: list[str] = dataclasses.field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        answer: dict[str, object] = {"field": self.field, "message": self.message}
        if self.allowed:
            answer["allowed"] = self.allowed
        return answer


class ProposalInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def normalize_changes(schema: Schema, changes: Mapping[str, PropertyValue]) -> dict[str, str]:
    """The changes as the strings HubSpot takes, or ProposalInvalid naming every bad property."""
    problems: list[Problem] = []
    normalized: dict[str, str] = {}
    for name, raw in changes.items():
        value, problem = _check(schema, name, hubspot_text(raw))
        if problem:
            problems.append(problem)
        else:
            normalized[name] = value
    if problems:
        raise ProposalInvalid(problems)
    return normalized


def _check(schema: Schema, name: str, value: str) -> tuple[str, Problem | None]:
    where = f"changes.{name}"
    kind = schema.object_type
    prop = schema.properties.get(name)
    if prop is None:
        close = difflib.get_close_matches(name, [n for n, p in schema.properties.items() if p.writable], n=5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return value, Problem(where, f"{kind} have no property {name!r}.{hint}", close)
    if not prop.writable:
        why = "calculated by HubSpot" if prop.calculated else "read-only"
        return value, Problem(where, f"{kind} property {name!r} ({prop.label}) is {why}; agents cannot write it.")
    if value == "":
        return value, None
    if prop.type == "enumeration":
        return _check_option(schema, name, value, where)
    if prop.type == "number":
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            return value, Problem(where, f"{prop.label} ({name!r}) takes a number, like 125000 or 99.5; got {value!r}.")
        return value, None
    if prop.type in ("date", "datetime"):
        return _check_moment(prop.type, prop.label, name, value, where)
    if prop.type == "bool" and value.lower() not in ("true", "false"):
        return value, Problem(where, f"{prop.label} ({name!r}) takes true or false; got {value!r}.", ["true", "false"])
    return value, None


def _check_option(schema: Schema, name: str, value: str, where: str) -> tuple[str, Problem | None]:
    options = schema.allowed_values(name)
    prop = schema.properties[name]
    values = {option.value for option in options}
    parts = value.split(";") if prop.field_type == "checkbox" else [value]
    if all(part in values for part in parts):
        return value, None
    hint = ""
    if (meant := schema.value_for_label(name, value)) is not None:
        hint = f" {value!r} is a label; send its id {meant!r}."
    elif name == OWNER_PROPERTY:
        hint = " Send the HubSpot owner id, not a user id or email."
    listed = [f"{option.value} ({option.label})" for option in options[:MAX_LISTED]]
    more = f" (and {len(options) - MAX_LISTED} more)" if len(options) > MAX_LISTED else ""
    message = f"{value!r} is not a valid {prop.label} ({name!r}).{hint} Allowed values: {', '.join(listed)}{more}."
    return value, Problem(where, message, listed)


def _check_moment(kind: str, label: str, name: str, value: str, where: str) -> tuple[str, Problem | None]:
    moment = parse_moment(value)
    example = "2026-12-31" if kind == "date" else "2026-12-31 or 2026-12-31T15:00:00Z"
    if moment is None:
        return value, Problem(where, f"{label} ({name!r}) takes a date like {example}; got {value!r}.")
    if kind == "date":
        if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
            return value, Problem(where, f"{label} ({name!r}) is a date without a time; send it like {example}.")
        return moment.date().isoformat(), None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z", None
