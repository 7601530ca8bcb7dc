"""The gate's policy: which changes an agent may make alone, which need people, and who is asked.

The policy is a TOML file (hsgate.toml; `default_policy.toml` ships beside this module). It is read
strictly: an unknown section, key, tier or rule is an error naming its line, because a typo that
was silently ignored would loosen the gate. Rules can only raise what the tiers decide.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from app.models import OBJECT_TYPES, Action, Change, Proposal, Tier
from app.schema import (
    OWNER_PROPERTY,
    PIPELINE_PROPERTY,
    STAGE_PROPERTY,
    Schema,
    parse_moment,
)
from app.validation import Problem

DEFAULT_POLICY_PATH: Path = Path(__file__).with_name("default_policy.toml")

_RANK: dict[Tier, int] = {Tier.AUTO: 0, Tier.REVIEW: 1, Tier.BLOCK: 2}
_TIER_NAMES = ", ".join(tier.value for tier in Tier)
_ACTION_KEYS: dict[Action, str] = {Action.CREATE_NOTE: "notes", Action.CREATE_TASK: "tasks"}
_SECTIONS: dict[str, tuple[str, ...]] = {
    # section -> its keys; () when the keys are names chosen by the user (object types, agents)
    "tiers": (),
    "rules": ("when", "object", "tier", "approvals", "value", "property"),
    "agents": (),
    "routing": ("fallback_channel", "owners", "teams", "pipelines"),
    "approvers": ("admins", "delegates"),
    "digest": ("period",),
    "lifecycle": ("expire_after", "remind_after", "escalate_to"),
}
_SCOPE_KEYS = ("objects", "properties")
_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_DURATION_UNITS: dict[str, timedelta] = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


class PolicyError(Exception):
    """The policy file cannot be used; str() is one line naming the file, the line and the problem."""

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


def parse_duration(text: str) -> timedelta:
    """A positive duration written as a whole number and a unit: "3s", "15m", "24h", "2d"."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f'{text!r} is not a duration; write a whole number and a unit s, m, h or d, like "24h"')
    amount = int(match.group(1))
    if amount == 0:
        raise ValueError(f"{text!r} is not a duration; it must be longer than zero")
    return amount * _DURATION_UNITS[match.group(2)]


def highest(tiers: Iterable[Tier]) -> Tier:
    """The strictest of the tiers; AUTO when there are none."""
    return max(tiers, key=_RANK.__getitem__, default=Tier.AUTO)


# ---------------------------------------------------------------- rules


@dataclass(frozen=True)
class RuleKind:
    """What a rule's `when` means: the objects it can apply to and what it needs from the file."""

    objects: tuple[str, ...] | None  # None: any object type
    default_property: str | None  # None: the rule watches a fixed property and takes no `property`
    value: str | None  # what `value` measures; None: the rule takes no value
    property_types: tuple[str, ...] = ()  # the HubSpot types the watched property must have


RULE_KINDS: dict[str, RuleKind] = {
    "stage_backward": RuleKind(("deals", "tickets"), None, None),
    "closed_stage": RuleKind(("deals", "tickets"), None, None),
    "date_shift_days": RuleKind(None, "closedate", "days", ("date", "datetime")),
    "date_in_past": RuleKind(None, "closedate", None, ("date", "datetime")),
    "amount_change_pct": RuleKind(None, "amount", "percent", ("number",)),
    "amount_above": RuleKind(None, "amount", "amount", ("number",)),
    "lifecycle_backward": RuleKind(("contacts", "companies"), None, None),
    "owner_change": RuleKind(None, None, None),
}


@dataclass(frozen=True)
class Rule:
    """One [[rules]] entry. `property` has its default filled in; None for rules on a fixed property."""

    when: str
    object: str | None
    tier: Tier | None
    approvals: int | None
    value: float | None
    property: str | None
    line: int

    def applies_to(self, object_type: str) -> bool:
        kind = RULE_KINDS[self.when]
        return (self.object is None or self.object == object_type) and (kind.objects is None or object_type in kind.objects)

    def effects(self) -> str:
        parts = [f"tier {self.tier.value}"] if self.tier else []
        if self.approvals:
            parts.append(f"needs {self.approvals} approval{'s' if self.approvals > 1 else ''}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Assessment:
    tier: Tier
    approvals: int
    fired: tuple[str, ...]  # one sentence per fired rule, for the card and the audit trail


@dataclass(frozen=True)
class AgentScope:
    objects: tuple[str, ...] | None  # object types the agent may touch, for every action
    properties: tuple[str, ...] | None  # properties the agent may change, for updates


# ---------------------------------------------------------------- the policy


@dataclass(frozen=True)
class Policy:
    source: str
    default_tier: Tier = Tier.REVIEW
    object_tiers: dict[str, Tier] = field(default_factory=dict)  # `[tiers] deals = "auto"`: a whole type
    property_tiers: dict[str, dict[str, Tier]] = field(default_factory=dict)
    action_tiers: dict[Action, Tier] = field(default_factory=dict)  # create_note / create_task
    rules: tuple[Rule, ...] = ()
    agent_scopes: dict[str, AgentScope] = field(default_factory=dict)
    fallback_channel: str | None = None
    owner_channels: dict[str, str] = field(default_factory=dict)
    team_channels: dict[str, str] = field(default_factory=dict)  # HubSpot team id -> channel
    pipeline_channels: dict[str, str] = field(default_factory=dict)
    admins: tuple[str, ...] = ()
    delegates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    digest_period: timedelta = timedelta(hours=1)
    expire_after: timedelta | None = None
    remind_after: timedelta | None = None
    escalate_to: str | None = None
    text: str = field(default="", repr=False, compare=False)  # kept so check() can name lines

    @classmethod
    def load(cls, path: Path | None) -> Policy:
        path = DEFAULT_POLICY_PATH if path is None else path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(str(path), None, "no such policy file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise PolicyError(str(path), None, f"cannot read the policy file: {error}") from None
        return cls.parse(text, path.name)

    @classmethod
    def parse(cls, text: str, source: str) -> Policy:
        located = _Located(source, text)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise _syntax_error(source, text, str(error)) from None
        for name in data:
            if name not in _SECTIONS:
                raise located.error((name,), f"{name!r} is not a policy section; sections are: {', '.join(_SECTIONS)}")
        tiers = _table(located, ("tiers",), data.get("tiers", {}))
        routing = _section(located, "routing", data)
        approvers = _section(located, "approvers", data)
        lifecycle = _section(located, "lifecycle", data)
        expire_after = _duration(located, ("lifecycle", "expire_after"), lifecycle.get("expire_after"))
        remind_after = _duration(located, ("lifecycle", "remind_after"), lifecycle.get("remind_after"))
        if expire_after and remind_after and remind_after >= expire_after:
            # the reminder would never be sent: the proposal expires first
            raise located.error(("lifecycle", "remind_after"), "must be shorter than expire_after")
        return cls(
            source=source,
            default_tier=_tier(located, ("tiers", "default"), tiers.get("default", Tier.REVIEW.value)),
            object_tiers=_object_tiers(located, tiers),
            property_tiers=_property_tiers(located, tiers),
            action_tiers={
                action: _tier(located, ("tiers", key), tiers[key]) for action, key in _ACTION_KEYS.items() if key in tiers
            },
            rules=_rules(located, data.get("rules", [])),
            agent_scopes=_agent_scopes(located, data.get("agents", {})),
            fallback_channel=_optional_text(located, ("routing", "fallback_channel"), routing.get("fallback_channel")),
            owner_channels=_text_map(located, ("routing", "owners"), routing.get("owners", {})),
            team_channels=_text_map(located, ("routing", "teams"), routing.get("teams", {})),
            pipeline_channels=_text_map(located, ("routing", "pipelines"), routing.get("pipelines", {})),
            admins=_texts(located, ("approvers", "admins"), approvers.get("admins", [])),
            delegates={
                owner: _texts(located, ("approvers", "delegates", owner), users)
                for owner, users in _table(located, ("approvers", "delegates"), approvers.get("delegates", {})).items()
            },
            digest_period=_duration(located, ("digest", "period"), _section(located, "digest", data).get("period"))
            or timedelta(hours=1),
            expire_after=expire_after,
            remind_after=remind_after,
            escalate_to=_optional_text(located, ("lifecycle", "escalate_to"), lifecycle.get("escalate_to")),
            text=text,
        )

    # ---------------------------------------------------------------- tiers

    def property_tier(self, object_type: str, name: str, schema: Schema | None = None) -> Tier:
        return self._property_tier(object_type, name, schema)[0]

    def base_tier(self, object_type: str, action: Action, properties: Iterable[str], schema: Schema | None = None) -> Tier:
        if action is not Action.UPDATE:
            return self._action_tier(action)[0]
        tiers = [self.property_tier(object_type, name, schema) for name in properties]
        # an update naming no property is malformed; it gets the default rather than slipping through as auto
        return highest(tiers) if tiers else self.default_tier

    def blocked(self, object_type: str, action: Action, properties: Iterable[str], schema: Schema | None = None) -> list[Problem]:
        if action is not Action.UPDATE:
            tier, why = self._action_tier(action)
            if tier is not Tier.BLOCK:
                return []
            message = f"{action.value} on {object_type} is blocked by {why}; such a proposal will never be accepted."
            return [Problem("action", message)]
        problems = []
        for name in properties:
            tier, why = self._property_tier(object_type, name, schema)
            if tier is Tier.BLOCK:
                message = (
                    f"{object_type} property {name!r} is blocked: {why}. A proposal changing it will never be "
                    f"accepted; leave it out of `changes`."
                )
                problems.append(Problem(f"changes.{name}", message))
        return problems

    def _property_tier(self, object_type: str, name: str, schema: Schema | None) -> tuple[Tier, str]:
        """The property's tier and where it comes from, worded for people and agents alike."""
        prop = schema.properties.get(name) if schema else None
        if prop is not None and not prop.writable:
            return Tier.BLOCK, ("calculated by HubSpot" if prop.calculated else "read-only in HubSpot")
        named = self.property_tiers.get(object_type, {})
        if name in named:
            return named[name], f'policy {self.source} [tiers] {object_type}.{name} = "{named[name].value}"'
        if object_type in self.object_tiers:
            tier = self.object_tiers[object_type]
            return tier, f'policy {self.source} [tiers] {object_type} = "{tier.value}"'
        return self.default_tier, f'policy {self.source} [tiers] default = "{self.default_tier.value}"'

    def _action_tier(self, action: Action) -> tuple[Tier, str]:
        key = _ACTION_KEYS[action]
        if action in self.action_tiers:
            tier = self.action_tiers[action]
            return tier, f'policy {self.source} [tiers] {key} = "{tier.value}"'
        return self.default_tier, f'policy {self.source} [tiers] default = "{self.default_tier.value}"'

    # ---------------------------------------------------------------- scope

    def scope_problems(self, agent: str, object_type: str, action: Action, properties: Iterable[str]) -> list[Problem]:
        scope = self.agent_scopes.get(agent)
        if scope is None:
            return []
        where = f"policy {self.source} [agents.{agent}]"
        if scope.objects is not None and object_type not in scope.objects:
            allowed = list(scope.objects)
            message = (
                f"agent {agent!r} may not propose changes to {object_type}; its scope ({where} objects) "
                f"allows only: {', '.join(allowed) or 'nothing'}."
            )
            return [Problem("object_type", message, allowed)]
        if action is not Action.UPDATE or scope.properties is None:
            return []
        allowed = list(scope.properties)
        return [
            Problem(
                f"changes.{name}",
                f"agent {agent!r} may not change {name!r}; its scope ({where} properties) allows only: "
                f"{', '.join(allowed) or 'nothing'}.",
                allowed,
            )
            for name in properties
            if name not in scope.properties
        ]

    # ---------------------------------------------------------------- assessment

    def assess(self, proposal: Proposal, schema: Schema, now: datetime) -> Assessment:
        base = self.base_tier(proposal.object_type, proposal.action, [c.property for c in proposal.changes], schema)
        fired = self._fired(proposal, schema, now)
        tier = highest([base, *(rule.tier for rule, _ in fired if rule.tier)])
        approvals = max([1, *(rule.approvals for rule, _ in fired if rule.approvals)])
        if approvals > 1:
            # a second approver is meaningless for a change that applies without any
            tier = highest([tier, Tier.REVIEW])
        return Assessment(tier, approvals, tuple(f"{rule.when}: {why} ({rule.effects()})" for rule, why in fired))

    def _fired(self, proposal: Proposal, schema: Schema, now: datetime) -> list[tuple[Rule, str]]:
        # a change to the value the record already holds changes nothing, so it fires nothing
        changes = {c.property: c for c in proposal.changes if not schema.same(c.property, c.old, c.new)}
        fired = []
        for rule in self.rules:
            if not rule.applies_to(proposal.object_type):
                continue
            why = _EVALUATORS[rule.when](rule, changes, schema, now)
            if why is not None:
                fired.append((rule, why))
        return fired

    def explain(self, proposal: Proposal, schema: Schema, now: datetime) -> str:
        subject = f"{proposal.action.value} {proposal.object_type} {proposal.record_id} by agent {proposal.agent}"
        lines = [f"Proposal {proposal.id}: {subject}", f"Policy: {self.source}", "Base tier:"]
        if proposal.action is Action.UPDATE:
            for change in proposal.changes:
                tier, why = self._property_tier(proposal.object_type, change.property, schema)
                lines.append(f"  {change.property} ({schema.label(change.property)}): {tier.value}, {why}")
        else:
            tier, why = self._action_tier(proposal.action)
            lines.append(f"  {proposal.action.value}: {tier.value}, {why}")
        fired = self._fired(proposal, schema, now)
        lines.append("Rules fired:" if fired else "Rules fired: none")
        lines.extend(f"  {rule.when} (line {rule.line}): {why} ({rule.effects()})" for rule, why in fired)
        assessment = self.assess(proposal, schema, now)
        plural = "s" if assessment.approvals > 1 else ""
        lines.append(f"Result: {assessment.tier.value}, {assessment.approvals} approval{plural}")
        return "\n".join(lines)

    # ---------------------------------------------------------------- check against HubSpot

    def check(self, schemas: dict[str, Schema]) -> list[str]:
        located = _Located(self.source, self.text)
        findings: list[str] = []
        for object_type, names in self.property_tiers.items():
            findings += _check_object(located, ("tiers", object_type), object_type, schemas)
            schema = schemas.get(object_type)
            if schema is not None:
                findings += [problem for name in names for problem in _check_tier_property(located, schema, name)]
        for object_type in self.object_tiers:
            findings += _check_object(located, ("tiers", object_type), object_type, schemas)
        for agent, scope in self.agent_scopes.items():
            findings += _check_scope(located, agent, scope, schemas)
        for index, rule in enumerate(self.rules):
            findings += _check_rule(located, index, rule, schemas)
        findings += _check_routing(located, self, schemas)
        return findings


# ---------------------------------------------------------------- rule evaluation

Evaluator = Callable[[Rule, Mapping[str, Change], Schema, datetime], str | None]


def _stage_backward(rule: Rule, changes: Mapping[str, Change], schema: Schema, now: datetime) -> str | None:
    name = STAGE_PROPERTY.get(schema.object_type, "")
    change = changes.get(name)
    found = schema.stage(change.old) if change and change.old else None
    if change is None or found is None:
        return None
    pipeline, old = found
    new = pipeline.stage(change.new)  # a stage in another pipeline has no order relative to this one
    if new is None or new.display_order >= old.display_order:
        return None
    return f"{schema.label(name)} moves back from {old.label} to {new.label} in {pipeline.label}"


def _closed_stage(rule: Rule, changes: Mapping[str, Change], schema: Schema, now: datetime) -> str | None:
    name = STAGE_PROPERTY.get(schema.object_type, "")
    change = changes.get(name)
    if change is None or not change.new:
        return None
    # the proposal may move the record to another pipeline at the same time; its stage lives there
    moved = changes.get(PIPELINE_PROPERTY.get(schema.object_type, ""))
    found = schema.stage(change.new, moved.new if moved else None)
    if found is None or not found[1].closed:
        return None
    return f"{schema.label(name)} moves to {found[1].label}, a closed stage"


def _date_shift_days(rule: Rule, changes: Mapping[str, Change], schema: Schema, now: datetime) -> str | None:
    change = changes.get(rule.property or "")
    old = parse_moment(change.old) if change and change.old else None
    new = parse_moment(change.new) if change and change.new else None
    # setting a date where there was none, or clearing one, is not a shift: the tiers govern those
    if change is None or old is None or new is None or rule.value is None:
        return None
    days = abs(new - old) / timedelta(days=1)
    if days <= rule.value:
        return None
    return (
        f"{schema.label(change.property)} moves {days:g} days, from {schema.display(change.property, change.old)} "
        f"to {schema.display(change.property, change.new)} (more than {_number(rule.value)})"
    )


def _date_in_past(rule: Rule, changes: Mapping[str, Change], schema: Schema, now: datetime) -> str | None:
    change = changes.get(rule.property or "")
    new = parse_moment(change.new) if change and change.new else None
    today = now.astimezone(UTC).date()
    if change is None or new is None or new.date() >= today:
        return None
    shown = schema.display(change.property, change.new)
    return f"{schema.label(change.property)} {shown} is before today ({today.strftime('%-d %b %Y')})"


def _amount_change_pct(rule: Rule, changes: Mapping[str, Change], schema: Schema, now: datetime) -> str | None:
    change = changes.get(rule.property or "")
    if change is None or rule.value is None:
        return None
    label = schema.label(change.property)
    moves = f"from {schema.display(change.property, change.old)} to {schema.display(change.property, change.new)}"
    old = _decimal(change.old)
    if not old:
        return f"{label} changes {moves}; with no previous amount to compare, any change counts"
    new = _decimal(change.new) or Decimal(0)  # a cleared amount has changed by all of it
    percent = abs(new - old) / abs(old) * 100
    if percent <= Decimal(str(rule.value)):
        return None
    return f"{label} changes by {_number(percent.quantize(Decimal('0.1')))}% {moves} (more than {_number(rule.value)}%)"


def _amount_above(rule: Rule, changes: Mapping[str, Change], schema: Schema, now: datetime) -> str | None:
    change = changes.get(rule.property or "")
    new = _decimal(change.new) if change else None
    if change is None or new is None or rule.value is None or new <= Decimal(str(rule.value)):
        return None
    return f"{schema.label(change.property)} {schema.display(change.property, change.new)} is above {_number(rule.value)}"


def _lifecycle_backward(rule: Rule, changes: Mapping[str, Change], schema: Schema, now: datetime) -> str | None:
    change = changes.get("lifecyclestage")
    if change is None or not schema.is_backward(change.property, change.old, change.new):
        return None
    moves = f"from {schema.display(change.property, change.old)} to {schema.display(change.property, change.new)}"
    return f"{schema.label(change.property)} moves back {moves}"


def _owner_change(rule: Rule, changes: Mapping[str, Change], schema: Schema, now: datetime) -> str | None:
    change = changes.get(OWNER_PROPERTY)
    if change is None:
        return None
    moves = f"from {schema.display(change.property, change.old)} to {schema.display(change.property, change.new)}"
    return f"{schema.label(change.property)} changes {moves}"


_EVALUATORS: dict[str, Evaluator] = {
    "stage_backward": _stage_backward,
    "closed_stage": _closed_stage,
    "date_shift_days": _date_shift_days,
    "date_in_past": _date_in_past,
    "amount_change_pct": _amount_change_pct,
    "amount_above": _amount_above,
    "lifecycle_backward": _lifecycle_backward,
    "owner_change": _owner_change,
}


def _decimal(value: str | None) -> Decimal | None:
    try:
        number = Decimal(value) if value else None
    except InvalidOperation:
        return None
    return number if number is not None and number.is_finite() else None


def _number(value: float | Decimal) -> str:
    """A threshold as people write it: 100,000 rather than 100000.0."""
    return f"{Decimal(str(value)).normalize():,f}"


# ---------------------------------------------------------------- check() findings


def _check_object(located: _Located, path: tuple[str, ...], object_type: str, schemas: dict[str, Schema]) -> list[str]:
    if object_type in schemas:
        return []
    return [located.message(path, f"HubSpot returned no schema for object type {object_type!r}")]


def _check_tier_property(located: _Located, schema: Schema, name: str) -> list[str]:
    path = ("tiers", schema.object_type, name)
    where = ("tiers", schema.object_type)
    prop = schema.properties.get(name)
    if prop is None:
        return [located.message(path, f"{schema.object_type} have no property {name!r}", where)]
    if not prop.writable:
        why = "calculated by HubSpot" if prop.calculated else "read-only in HubSpot"
        return [located.message(path, f"{schema.object_type} property {name!r} is {why}, so it is always block", where)]
    return []


def _check_scope(located: _Located, agent: str, scope: AgentScope, schemas: dict[str, Schema]) -> list[str]:
    findings = []
    objects = scope.objects if scope.objects is not None else tuple(schemas)
    for object_type in scope.objects or ():
        findings += _check_object(located, ("agents", agent, "objects"), object_type, schemas)
    known = [schemas[o] for o in objects if o in schemas]
    for name in scope.properties or ():
        if known and not any(name in schema.properties for schema in known):
            types = " and ".join(schema.object_type for schema in known)
            path = ("agents", agent, "properties")
            findings.append(located.message(path, f"{types} have no property {name!r}"))
    return findings


def _check_rule(located: _Located, index: int, rule: Rule, schemas: dict[str, Schema]) -> list[str]:
    path: tuple[str | int, ...] = ("rules", index, "property")
    if rule.object is not None and rule.object not in schemas:
        return [located.message(("rules", index, "object"), f"HubSpot returned no schema for object type {rule.object!r}")]
    if rule.property is None:
        return []
    kind = RULE_KINDS[rule.when]
    candidates = [schemas[rule.object]] if rule.object else [s for s in schemas.values() if rule.applies_to(s.object_type)]
    having = [schema for schema in candidates if rule.property in schema.properties]
    if not having:
        types = " and ".join(schema.object_type for schema in candidates) or "no object type"
        return [located.message(path, f"{types} have no property {rule.property!r}")]
    findings = []
    for schema in having:
        prop = schema.properties[rule.property]
        if prop.type not in kind.property_types:
            wanted = " or ".join(kind.property_types)
            problem = f"{schema.object_type} property {rule.property!r} is a {prop.type}; {rule.when} needs a {wanted}"
            findings.append(located.message(path, problem))
    return findings


def _check_routing(located: _Located, policy: Policy, schemas: dict[str, Schema]) -> list[str]:
    findings = []
    pipelines = {p.id for schema in schemas.values() for p in schema.pipelines}
    for pipeline_id in policy.pipeline_channels:
        if pipeline_id not in pipelines:
            path = ("routing", "pipelines", pipeline_id)
            findings.append(located.message(path, f"HubSpot has no pipeline {pipeline_id!r}", ("routing", "pipelines")))
    teams = {team for schema in schemas.values() for owner in schema.owners.values() for team in owner.team_ids}
    for team_id in policy.team_channels if teams else ():
        if team_id not in teams:
            path = ("routing", "teams", team_id)
            findings.append(located.message(path, f"no HubSpot owner is in team {team_id!r}", ("routing", "teams")))
    owners = {owner_id for schema in schemas.values() for owner_id in schema.owners}
    named = [("routing", "owners", o) for o in policy.owner_channels] + [("approvers", "delegates", o) for o in policy.delegates]
    for path in named if owners else ():
        if path[-1] not in owners:
            findings.append(located.message(path, f"HubSpot has no owner {path[-1]!r}", path[:-1]))
    return findings


# ---------------------------------------------------------------- reading the file


@dataclass(frozen=True)
class _Located:
    """The policy text, to find the line where a setting is written; tomllib keeps no positions."""

    source: str
    text: str

    def line(self, path: tuple[str | int, ...]) -> int:
        lines = [_strip_comment(line) for line in self.text.splitlines()]
        start, end, keys = _section_of(lines, path)
        cursor = start
        for key in keys:
            pattern = re.compile(rf"(?:^|[\s{{,.])(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*[=.]")
            found = next((i for i in range(cursor, end) if pattern.search(lines[i])), None)
            if found is None:
                break
            cursor = found
        return cursor + 1

    def message(self, path: tuple[str | int, ...], problem: str, where: tuple[str | int, ...] | None = None) -> str:
        return str(self.error(path, problem, where))

    def error(self, path: tuple[str | int, ...], problem: str, where: tuple[str | int, ...] | None = None) -> PolicyError:
        return PolicyError(self.source, self.line(path), f"{_where(where or path)}: {problem}")


_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*$")
_HEADER_KEY = re.compile(r"\"([^\"]*)\"|'([^']*)'|([^.\s\"']+)")


def _section_of(lines: list[str], path: tuple[str | int, ...]) -> tuple[int, int, list[str]]:
    """The lines of the table that holds `path` (start, end) and the keys left to find inside it."""
    headers: list[tuple[int, tuple[str | int, ...]]] = []
    counts: dict[tuple[str, ...], int] = {}
    for index, line in enumerate(lines):
        match = _HEADER.match(line)
        if match is None:
            continue
        keys = tuple(next(g for g in m.groups() if g is not None) for m in _HEADER_KEY.finditer(match.group(2)))
        resolved: tuple[str | int, ...] = keys
        if match.group(1) == "[[":
            counts[keys] = counts.get(keys, -1) + 1
            resolved = (*keys, counts[keys])
        headers.append((index, resolved))
    best = max(
        ((index, resolved) for index, resolved in headers if path[: len(resolved)] == resolved),
        key=lambda header: len(header[1]),
        default=None,
    )
    if best is None:
        end = headers[0][0] if headers else len(lines)
        return 0, end, [str(key) for key in path if isinstance(key, str)]
    index, resolved = best
    end = next((i for i, _ in headers if i > index), len(lines))
    return index, end, [str(key) for key in path[len(resolved) :]]


def _strip_comment(line: str) -> str:
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:index]
    return line


def _where(path: tuple[str | int, ...]) -> str:
    """A setting's name in messages: rules[1].when, [tiers].deals, [agents.enricher].objects."""
    head, *rest = path
    if head == "rules" and rest:
        index, *keys = rest
        return ".".join([f"rules[{index}]", *map(str, keys)])
    table = [str(head)]
    if head == "agents" and rest:
        table.append(str(rest.pop(0)))
    return ".".join([f"[{'.'.join(table)}]", *map(str, rest)])


def _syntax_error(source: str, text: str, message: str) -> PolicyError:
    match = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if match:
        return PolicyError(source, int(match.group(1)), f"invalid TOML: {message[: match.start()]}")
    # "(at end of document)": the problem is on the last line
    problem = re.sub(r"\s*\(at end of document\)$", "", message)
    return PolicyError(source, max(1, len(text.splitlines())), f"invalid TOML: {problem}")


def _section(located: _Located, name: str, data: dict[str, object]) -> dict[str, object]:
    table = _table(located, (name,), data.get(name, {}))
    for key in table:
        if key not in _SECTIONS[name]:
            raise located.error((name, key), f"{key!r} is not a key of [{name}]; keys are: {', '.join(_SECTIONS[name])}")
    return table


def _table(located: _Located, path: tuple[str | int, ...], value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise located.error(path, f"must be a table, not {_kind(value)}")
    return value


def _tier(located: _Located, path: tuple[str | int, ...], value: object) -> Tier:
    if not isinstance(value, str) or value not in {tier.value for tier in Tier}:
        raise located.error(path, f"{value!r} is not a tier; tiers are: {_TIER_NAMES}")
    return Tier(value)


def _object_tiers(located: _Located, tiers: dict[str, object]) -> dict[str, Tier]:
    for key in tiers:
        if key not in ("default", *_ACTION_KEYS.values(), *OBJECT_TYPES):
            names = ", ".join(("default", *OBJECT_TYPES, *_ACTION_KEYS.values()))
            raise located.error(("tiers", key), f"{key!r} is not an object type; [tiers] takes: {names}")
    return {key: _tier(located, ("tiers", key), tiers[key]) for key in OBJECT_TYPES if isinstance(tiers.get(key), str)}


def _property_tiers(located: _Located, tiers: dict[str, object]) -> dict[str, dict[str, Tier]]:
    found: dict[str, dict[str, Tier]] = {}
    for object_type in OBJECT_TYPES:
        value = tiers.get(object_type)
        if value is None or isinstance(value, str):
            continue
        table = _table(located, ("tiers", object_type), value)
        found[object_type] = {name: _tier(located, ("tiers", object_type, name), raw) for name, raw in table.items()}
    return found


def _rules(located: _Located, value: object) -> tuple[Rule, ...]:
    if not isinstance(value, list):
        raise located.error(("rules",), f"must be [[rules]] tables, not {_kind(value)}")
    return tuple(_rule(located, index, _table(located, ("rules", index), raw)) for index, raw in enumerate(value))


def _rule(located: _Located, index: int, raw: dict[str, object]) -> Rule:
    def error(key: str, problem: str) -> PolicyError:
        return located.error(("rules", index, key), problem)

    for key in raw:
        if key not in _SECTIONS["rules"]:
            raise error(key, f"{key!r} is not a rule key; keys are: {', '.join(_SECTIONS['rules'])}")
    when = raw.get("when")
    if when is None:
        raise located.error(("rules", index), f"needs `when`, one of: {', '.join(RULE_KINDS)}", ("rules", index, "when"))
    if not isinstance(when, str) or when not in RULE_KINDS:
        raise error("when", f"{when!r} is not a rule; rules are: {', '.join(RULE_KINDS)}")
    kind = RULE_KINDS[when]
    target = raw.get("object")
    objects = kind.objects or OBJECT_TYPES
    if target is not None and (not isinstance(target, str) or target not in objects):
        raise error("object", f"{when} applies to {', '.join(objects)}, not {target!r}")
    tier = _tier(located, ("rules", index, "tier"), raw["tier"]) if "tier" in raw else None
    if tier is Tier.AUTO:
        raise error("tier", 'rules only raise, so tier "auto" would never change anything; use review or block')
    approvals = raw.get("approvals")
    if approvals is not None and (not isinstance(approvals, int) or isinstance(approvals, bool) or approvals < 1):
        raise error("approvals", f"must be a whole number of at least 1, not {approvals!r}")
    if tier is None and approvals is None:
        raise located.error(("rules", index), "needs `tier` or `approvals` (or both)")
    value = raw.get("value")
    if kind.value is None and value is not None:
        raise error("value", f"{when} takes no value")
    if kind.value is not None and value is None:
        raise located.error(("rules", index, "when"), f"{when} needs a value ({kind.value})", ("rules", index, "value"))
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
        raise error("value", f"must be a number ({kind.value}) of at least 0, not {value!r}")
    watched = raw.get("property")
    if watched is not None and kind.default_property is None:
        raise error("property", f"{when} watches a fixed property and takes no `property`")
    if watched is not None and (not isinstance(watched, str) or not watched):
        raise error("property", f"must be a property name, not {watched!r}")
    return Rule(
        when=when,
        object=target,
        tier=tier,
        approvals=approvals,
        value=None if value is None else float(value),
        property=watched or kind.default_property,
        line=located.line(("rules", index)),
    )


def _agent_scopes(located: _Located, agents: object) -> dict[str, AgentScope]:
    scopes = {}
    for agent, raw in _table(located, ("agents",), agents).items():
        table = _table(located, ("agents", agent), raw)
        for key in table:
            if key not in _SCOPE_KEYS:
                raise located.error(("agents", agent, key), f"{key!r} is not a scope key; keys are: {', '.join(_SCOPE_KEYS)}")
        objects = _texts(located, ("agents", agent, "objects"), table["objects"]) if "objects" in table else None
        for object_type in objects or ():
            if object_type not in OBJECT_TYPES:
                problem = f"{object_type!r} is not an object type; object types are: {', '.join(OBJECT_TYPES)}"
                raise located.error(("agents", agent, "objects"), problem)
        properties = _texts(located, ("agents", agent, "properties"), table["properties"]) if "properties" in table else None
        scopes[agent] = AgentScope(objects, properties)
    return scopes


def _texts(located: _Located, path: tuple[str | int, ...], value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise located.error(path, f"must be a list of names, not {value!r}")
    return tuple(value)


def _text_map(located: _Located, path: tuple[str | int, ...], value: object) -> dict[str, str]:
    table = _table(located, path, value)
    for key, item in table.items():
        if not isinstance(item, str) or not item:
            raise located.error((*path, key), f"must be a Slack channel id, not {item!r}")
    return {key: str(item) for key, item in table.items()}


def _optional_text(located: _Located, path: tuple[str | int, ...], value: object) -> str | None:
    if value is None or value == "":  # other tools write "" for "not set"
        return None
    if not isinstance(value, str):
        raise located.error(path, f"must be a Slack channel id, not {value!r}")
    return value


def _duration(located: _Located, path: tuple[str | int, ...], value: object) -> timedelta | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise located.error(path, f'{value!r} is not a duration; write it as a string, like "24h"')
    try:
        return parse_duration(value)
    except ValueError as error:
        raise located.error(path, str(error)) from None


def _kind(value: object) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), f"{value!r}")
