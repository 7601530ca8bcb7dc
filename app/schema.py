"""HubSpot's schema as hsgate uses it: property definitions, pipelines and owners.

Records hold ids and machine values (stage ids, owner ids, ISO dates); people read labels. Every
translation between the two, and every comparison of two values, lives here, so the card, the
validator and the stale-value check agree on what a value means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

EMPTY = "(empty)"


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class PropertyDef:
    name: str
    label: str
    type: str  # string | number | date | datetime | enumeration | bool
    field_type: str = "text"
    options: tuple[Option, ...] = ()
    read_only: bool = False
    calculated: bool = False
    external_options: bool = False

    @property
    def writable(self) -> bool:
        return not (self.read_only or self.calculated)


@dataclass(frozen=True)
class Stage:
    id: str
    label: str
    display_order: int
    closed: bool


@dataclass(frozen=True)
class Pipeline:
    id: str
    label: str
    stages: tuple[Stage, ...]

    def stage(self, stage_id: str) -> Stage | None:
        return next((stage for stage in self.stages if stage.id == stage_id), None)


@dataclass(frozen=True)
class Owner:
    id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    user_id: int | None = None  # the HubSpot user behind the owner, as property history names them
    team_ids: tuple[str, ...] = ()  # the owner's HubSpot teams, primary team first

    @property
    def name(self) -> str:
        full = " ".join(part for part in (self.first_name, self.last_name) if part)
        return full or self.email or f"owner {self.id}"


# The properties whose options live outside the property definition.
STAGE_PROPERTIES = {"dealstage", "hs_pipeline_stage"}
PIPELINE_PROPERTIES = {"pipeline", "hs_pipeline"}
OWNER_PROPERTY = "hubspot_owner_id"
NAME_PROPERTIES = {
    "contacts": ("firstname", "lastname", "email"),
    "companies": ("name", "domain"),
    "deals": ("dealname",),
    "tickets": ("subject",),
}
PIPELINE_PROPERTY = {"deals": "pipeline", "tickets": "hs_pipeline"}
STAGE_PROPERTY = {"deals": "dealstage", "tickets": "hs_pipeline_stage"}


@dataclass(frozen=True)
class Schema:
    """One object type's properties and pipelines, with the account's owners."""

    object_type: str
    properties: dict[str, PropertyDef]
    pipelines: tuple[Pipeline, ...] = ()
    owners: dict[str, Owner] = field(default_factory=dict)

    def owner_by_user_id(self, user_id: int | None) -> Owner | None:
        return next((owner for owner in self.owners.values() if user_id is not None and owner.user_id == user_id), None)

    def is_backward(self, name: str, current: str | None, new: str) -> bool:
        """Whether `new` comes before `current` in the property's order (lifecycle stages, pipeline stages)."""
        order = [option.value for option in self.allowed_values(name)] if name in self.properties else []
        if not current or current not in order or new not in order:
            return False
        return order.index(new) < order.index(current)

    def label(self, name: str) -> str:
        prop = self.properties.get(name)
        return prop.label if prop else name

    def pipeline(self, pipeline_id: str | None) -> Pipeline | None:
        return next((p for p in self.pipelines if p.id == pipeline_id), None)

    def stage(self, stage_id: str, pipeline_id: str | None = None) -> tuple[Pipeline, Stage] | None:
        for pipeline in self.pipelines:
            stage = pipeline.stage(stage_id)
            if stage and (pipeline_id is None or pipeline.id == pipeline_id):
                return pipeline, stage
        return None

    def allowed_values(self, name: str) -> list[Option]:
        """The values an enumeration takes, with labels, wherever HubSpot keeps them."""
        prop = self.properties[name]
        if name in STAGE_PROPERTIES:
            many = len(self.pipelines) > 1
            return [Option(s.id, f"{s.label} ({p.label})" if many else s.label) for p in self.pipelines for s in p.stages]
        if name in PIPELINE_PROPERTIES:
            return [Option(p.id, p.label) for p in self.pipelines]
        if name == OWNER_PROPERTY:
            return [Option(o.id, o.name) for o in self.owners.values()]
        return list(prop.options)

    def value_for_label(self, name: str, label: str) -> str | None:
        """The id behind a label an agent sent instead of it ("Closed Won" -> "closedwon")."""
        wanted = label.strip().lower()
        labels = {option.label.lower(): option.value for option in self.allowed_values(name)}
        if name in STAGE_PROPERTIES:
            labels |= {stage.label.lower(): stage.id for pipeline in self.pipelines for stage in pipeline.stages}
        return labels.get(wanted)

    def display(self, name: str, value: str | None) -> str:
        """A value as a person reads it: labels, not ids; dates as dates."""
        if value is None or value == "":
            return EMPTY
        prop = self.properties.get(name)
        if prop is None:
            return value
        if name in STAGE_PROPERTIES and (found := self.stage(value)):
            return found[1].label  # a record's stage is read within its own pipeline
        if prop.type == "enumeration":
            labels = {option.value: option.label for option in self.allowed_values(name)}
            if prop.field_type == "checkbox" and ";" in value:
                return ", ".join(labels.get(part, part) for part in value.split(";"))
            return labels.get(value, value)
        if prop.type == "number":
            number = _decimal(value)
            return value if number is None else f"{number.normalize():,f}"
        if prop.type in ("date", "datetime"):
            moment = parse_moment(value)
            if moment is None:
                return value
            if prop.type == "date" or (moment.hour, moment.minute, moment.second) == (0, 0, 0):
                return moment.strftime("%-d %b %Y")
            return moment.strftime("%-d %b %Y %H:%M UTC")
        if prop.type == "bool":
            return {"true": "Yes", "false": "No"}.get(value.lower(), value)
        return value

    def same(self, name: str, left: str | None, right: str | None) -> bool:
        """Whether two raw values mean the same thing (so "50000" equals "50000.0")."""
        return self.canonical(name, left) == self.canonical(name, right)

    def canonical(self, name: str, value: str | None) -> str:
        if value is None or value == "":
            return ""
        prop = self.properties.get(name)
        kind = prop.type if prop else "string"
        if kind == "number":
            number = _decimal(value)
            return value if number is None else str(number.normalize())
        if kind in ("date", "datetime"):
            moment = parse_moment(value)
            return value if moment is None else moment.isoformat()
        if kind == "bool":
            return value.lower()
        return value


def parse_moment(value: str) -> datetime | None:
    """An ISO date, an ISO datetime or epoch milliseconds, as an aware UTC datetime."""
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _decimal(value: str) -> Decimal | None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
