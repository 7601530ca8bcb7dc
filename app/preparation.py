"""Preparing a proposal's card: read the record, apply the policy, route it, post it.

The job does nothing unless the proposal is still `queued`, so a retried job never posts twice
after the card is recorded. A value that moved in HubSpot after the agent proposed shows as a
conflict card; another agent's waiting proposal for the same field takes this one as an
alternative on its card; the same agent's older one is superseded.
"""

from __future__ import annotations

from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError

from app import expiry
from app.cards import approval_card, outcome_card
from app.hubspot import HubSpotError, Record
from app.models import (
    HSGATE,
    CardRef,
    Change,
    MessageRef,
    Proposal,
    RecordView,
    Status,
    Tier,
)
from app.routing import NoRoute, Route, route_card
from app.runtime import Runtime
from app.schema import (
    NAME_PROPERTIES,
    OWNER_PROPERTY,
    PIPELINE_PROPERTY,
    STAGE_PROPERTY,
    Schema,
)
from app.writing import apply_proposal, fail


def prepare_card(rt: Runtime, proposal_id: str, final_attempt: bool = True) -> None:
    proposal = rt.store.require(proposal_id)
    if proposal.status is not Status.QUEUED:
        return
    schema = rt.hubspot.schema(proposal.object_type)
    changed = [change.property for change in proposal.changes]
    try:
        record = rt.hubspot.read(proposal.object_type, proposal.record_id, _properties_to_read(proposal, schema), changed)
    except HubSpotError as error:
        if error.retryable and not final_attempt:
            raise
        why = f"{proposal.object_type} record {proposal.record_id} does not exist" if error.not_found else error.message
        fail(rt, proposal, Status.QUEUED, why)
        return
    changes = [
        _since_proposal(schema, with_old_value(schema, change, record), record, proposal.created_at)
        for change in proposal.changes
    ]
    problem = _pipeline_problem(schema, proposal, record)
    if problem:
        fail(rt, proposal, Status.QUEUED, problem)
        return
    owner_id = record.get(OWNER_PROPERTY)
    owner = rt.hubspot.owner(owner_id) if owner_id else None
    view = RecordView(
        name=_record_name(proposal.object_type, record),
        url=rt.hubspot.record_url(proposal.object_type, proposal.record_id),
        owner_id=owner_id or None,
        owner_name=owner.name if owner else None,
        pipeline_id=record.get(PIPELINE_PROPERTY.get(proposal.object_type, "")),
    )
    assessment = rt.policy.assess(proposal.model_copy(update={"changes": changes}), schema, rt.clock())
    if assessment.tier is Tier.BLOCK:
        fail(rt, proposal, Status.QUEUED, "blocked by policy: " + "; ".join(assessment.fired))
        return
    try:
        route: Route | None = route_card(rt, proposal, owner, view.pipeline_id)
    except NoRoute as error:
        if assessment.tier is not Tier.AUTO:  # an automatic change needs nobody to ask
            fail(rt, proposal, Status.QUEUED, f"no one to ask: {error}")
            return
        route = None
    rt.store.transition(
        proposal_id,
        allowed=[Status.QUEUED],
        to=None,
        event="prepared",
        actor=HSGATE,
        detail={"tier": assessment.tier.value, "approvals": str(assessment.approvals)},
        changes=changes,
        record=view,
        approvers=route.approvers if route else list(rt.admins),
        tier=assessment.tier,
        approvals_required=assessment.approvals,
        rules_fired=list(assessment.fired),
        notify_channel=route.channel if route else None,
        owner_user=route.approver_user if route else None,
    )
    prepared = rt.store.require(proposal_id)
    stale = any(change.current_display for change in prepared.changes)
    if assessment.tier is Tier.AUTO and not stale:
        rt.store.transition(proposal_id, allowed=[Status.QUEUED], to=Status.APPROVED, event="auto_approved", actor="policy")
        apply_proposal(rt, proposal_id, final_attempt)
    elif route is None:  # a stale automatic change with nobody to show it to
        rt.store.transition(proposal_id, allowed=[Status.QUEUED], to=Status.CONFLICT, event="conflict", actor=HSGATE)
    elif stale or not _join_rivals_card(rt, prepared):
        try:
            _post_card(rt, prepared, route)
        except SlackApiError as error:
            if not final_attempt:
                raise
            fail(rt, proposal, Status.QUEUED, f"Slack refused the card ({error.response.get('error', 'no answer')})")


def _join_rivals_card(rt: Runtime, proposal: Proposal) -> bool:
    """Another agent's proposal for the same field already waits: join its card as an alternative.

    Never two live cards racing for one field. False when there is no such card (or it was decided
    meanwhile), so the proposal gets its own.
    """
    names = {change.property: change.new for change in proposal.changes}
    for other in rt.store.pending_for_record(proposal.object_type, proposal.record_id, before=proposal.id):
        if (
            other.status is not Status.AWAITING_APPROVAL
            or other.agent == proposal.agent
            or other.rival_of is not None
            or not any(names.get(c.property) not in (None, c.new) for c in other.changes)
        ):
            continue
        done = rt.store.transition(
            other.id,
            allowed=[Status.AWAITING_APPROVAL],
            to=None,
            event="rival_added",
            actor=HSGATE,
            detail={"rival": proposal.id},
            rivals=[*other.rivals, proposal.id],
        )
        if not done.done:
            continue
        rt.store.transition(
            proposal.id,
            allowed=[Status.QUEUED],
            to=Status.AWAITING_APPROVAL,
            event="joined_card",
            actor=HSGATE,
            detail={"card_of": other.id},
            card=other.card,
            rival_of=other.id,
            approvers=list(dict.fromkeys([*other.approvers, *proposal.approvers])),
        )
        rt.queue.enqueue("refresh_card", other.id, f"rival-{proposal.id}")
        return True
    return False


def _since_proposal(schema: Schema, change: Change, record: Record, proposed_at: datetime) -> Change:
    """A property changed in HubSpot after the agent proposed: the agent saw the value before it."""
    history = record.history.get(change.property) or []
    if not history or _moment(history[0].timestamp) <= proposed_at:
        return change
    seen = next((entry.value for entry in history if _moment(entry.timestamp) <= proposed_at), None)
    return change.model_copy(
        update={
            "old": seen,
            "old_display": schema.display(change.property, seen),
            "current": change.old,
            "current_display": change.old_display,
        }
    )


def _moment(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(UTC)


def _post_card(rt: Runtime, prepared: Proposal, route: Route) -> None:
    """The approval card; or, when a value moved since the proposal, a conflict card with no Approve."""
    stale = any(change.current_display for change in prepared.changes)
    draft = CardRef(channel=route.channel, ts="", approver_user=route.approver_user, fallback_reason=route.fallback_reason)
    shown = prepared.model_copy(update={"card": draft, "status": Status.CONFLICT if stale else prepared.status})
    card = outcome_card(shown) if stale else approval_card(shown)
    channel, ts = rt.messenger.post(route.channel, card)
    copies = [MessageRef(channel=c, ts=t) for c, t in (rt.messenger.post(dm, card) for dm in route.copies_to)]
    done = rt.store.transition(
        prepared.id,
        allowed=[Status.QUEUED],
        to=Status.CONFLICT if stale else Status.AWAITING_APPROVAL,
        event="conflict" if stale else "card_posted",
        actor=HSGATE,
        detail={"channel": channel, "ts": ts},
        card=draft.model_copy(update={"channel": channel, "ts": ts, "copies": copies}),
        **({} if stale else expiry.deadlines(rt, rt.clock())),
    )
    if done.done and not stale:
        posted = rt.store.require(prepared.id)
        expiry.schedule(rt, posted)
        _supersede_older(rt, posted)


def _supersede_older(rt: Runtime, proposal: Proposal) -> None:
    """An agent's newer proposal for the same record and property replaces its pending one."""
    mine = {change.property for change in proposal.changes}
    replaced = [
        other
        for other in rt.store.pending_for_record(proposal.object_type, proposal.record_id, before=proposal.id)
        if other.agent == proposal.agent and mine & {change.property for change in other.changes}
    ]
    if not replaced or proposal.card is None:
        return
    link = rt.messenger.permalink(proposal.card.channel, proposal.card.ts)
    for other in replaced:
        done = rt.store.transition(
            other.id,
            allowed=[Status.QUEUED, Status.AWAITING_APPROVAL],
            to=Status.SUPERSEDED,
            event="superseded",
            actor=proposal.agent,
            detail={"by": proposal.id},
            superseded_by=proposal.id,
            superseded_link=link,
        )
        if done.done:
            rt.queue.enqueue("publish_outcome", other.id, "superseded")


def _properties_to_read(proposal: Proposal, schema: Schema) -> set[str]:
    names = {change.property for change in proposal.changes}
    names |= set(NAME_PROPERTIES[proposal.object_type]) | {OWNER_PROPERTY}
    if proposal.object_type in PIPELINE_PROPERTY:
        names |= {PIPELINE_PROPERTY[proposal.object_type], STAGE_PROPERTY[proposal.object_type]}
    return {name for name in names if name in schema.properties}


def with_old_value(schema: Schema, change: Change, record: Record) -> Change:
    """The change with the record's current value as the old value the card shows."""
    old = record.get(change.property)
    return change.model_copy(update={"old": old, "old_display": schema.display(change.property, old)})


def _record_name(object_type: str, record: Record) -> str:
    if object_type == "contacts":
        full = " ".join(filter(None, (record.get("firstname"), record.get("lastname"))))
        return full or record.get("email") or f"Contact {record.id}"
    for name in NAME_PROPERTIES[object_type]:
        if record.get(name):
            return str(record.get(name))
    return f"{object_type.rstrip('s').title()} {record.id}"


def _pipeline_problem(schema: Schema, proposal: Proposal, record: Record) -> str | None:
    """A stage belongs to one pipeline: a new stage must be in the pipeline the record will be in."""
    if proposal.object_type not in STAGE_PROPERTY:
        return None
    proposed = {change.property: change.new for change in proposal.changes}
    stage_id = proposed.get(STAGE_PROPERTY[proposal.object_type])
    if not stage_id:
        return None
    pipeline_id = proposed.get(PIPELINE_PROPERTY[proposal.object_type]) or record.get(PIPELINE_PROPERTY[proposal.object_type])
    pipeline = schema.pipeline(pipeline_id)
    if pipeline is None or pipeline.stage(stage_id):
        return None
    stages = ", ".join(f"{s.id} ({s.label})" for s in pipeline.stages)
    return f"stage {stage_id!r} is not in the record's pipeline {pipeline.label!r}; its stages are {stages}"
