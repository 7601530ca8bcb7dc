"""The worker's side of a proposal: prepare its card, write an approved change, undo one.

Every function starts from the stored status and does nothing unless the proposal is in the status
it handles, so a job that runs twice (a retry, a worker killed mid-job) never writes twice. Right
before writing, the record is read again: a value that moved since the card was shown is never
overwritten.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from slack_sdk.errors import SlackApiError

from app import digest, expiry
from app.cards import Card, approval_card, audit_reply, outcome_card, text_only, undoable
from app.hubspot import HubSpotError, Record
from app.livecard import card_with_rivals
from app.models import Action, CardRef, Change, MessageRef, Proposal, RecordView, ReplyRef, Status, Tier
from app.routing import NoRoute, Route, route_card
from app.runtime import Runtime
from app.schema import NAME_PROPERTIES, OWNER_PROPERTY, PIPELINE_PROPERTY, STAGE_PROPERTY, Schema

ACTOR = "hsgate"
LIFECYCLE = "lifecyclestage"


class WriteNotTaken(Exception):
    """HubSpot answered, but reading the record back shows a different value."""


# -- preparing the card ----------------------------------------------------------------------------


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
        _fail(rt, proposal, Status.QUEUED, why)
        return
    changes = [_since_proposal(schema, with_old_value(schema, change, record), record, proposal.created_at) for change in proposal.changes]
    problem = _pipeline_problem(schema, proposal, record)
    if problem:
        _fail(rt, proposal, Status.QUEUED, problem)
        return
    owner_id = record.get(OWNER_PROPERTY)
    owner = rt.hubspot.owner(owner_id) if owner_id else None
    view = RecordView(
        name=_record_name(proposal.object_type, record),
        url=rt.hubspot.record_url(proposal.object_type, proposal.record_id),
        owner_id=owner_id or None,
        owner_name=owner.name if owner else None,
    )
    assessment = rt.policy.assess(proposal.model_copy(update={"changes": changes}), schema, rt.clock())
    if assessment.tier is Tier.BLOCK:
        _fail(rt, proposal, Status.QUEUED, "blocked by policy: " + "; ".join(assessment.fired))
        return
    pipeline_id = record.get(PIPELINE_PROPERTY.get(proposal.object_type, ""))
    try:
        route: Route | None = route_card(rt, proposal, owner, pipeline_id)
    except NoRoute as error:
        if assessment.tier is not Tier.AUTO:  # an automatic change needs nobody to ask
            _fail(rt, proposal, Status.QUEUED, f"no one to ask: {error}")
            return
        route = None
    rt.store.transition(
        proposal_id,
        allowed=[Status.QUEUED],
        to=None,
        event="prepared",
        actor=ACTOR,
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
    stale = any(change.current_display for change in changes)
    if assessment.tier is Tier.AUTO and not stale:
        rt.store.transition(proposal_id, allowed=[Status.QUEUED], to=Status.APPROVED, event="auto_approved", actor="policy")
        apply_proposal(rt, proposal_id, final_attempt)
    elif route is None:  # a stale automatic change with nobody to show it to
        rt.store.transition(proposal_id, allowed=[Status.QUEUED], to=Status.CONFLICT, event="conflict", actor=ACTOR)
    elif stale or not _join_rivals_card(rt, rt.store.require(proposal_id)):
        try:
            _post_card(rt, proposal_id, route)
        except SlackApiError as error:
            if not final_attempt:
                raise
            _fail(rt, proposal, Status.QUEUED, f"Slack refused the card ({error.response.get('error', 'no answer')})")


def _join_rivals_card(rt: Runtime, proposal: Proposal) -> bool:
    """Another agent's proposal for the same field already waits: join its card as an alternative.

    Never two live cards racing for one field. False when there is no such card (or it was decided
    meanwhile), so the proposal gets its own.
    """
    names = {change.property: change.new for change in proposal.changes}
    record_ids = rt.store.ids_for_record(proposal.object_type, proposal.record_id)
    for other in (rt.store.get(pid) for pid in record_ids[: record_ids.index(proposal.id)]):
        if (
            other is None
            or other.status is not Status.AWAITING_APPROVAL
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
            actor=ACTOR,
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
            actor=ACTOR,
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


def _post_card(rt: Runtime, proposal_id: str, route: Route) -> None:
    """The approval card; or, when a value moved since the proposal, a conflict card with no Approve."""
    prepared = rt.store.require(proposal_id)
    stale = any(change.current_display for change in prepared.changes)
    draft = CardRef(channel=route.channel, ts="", approver_user=route.approver_user, fallback_reason=route.fallback_reason)
    shown = prepared.model_copy(update={"card": draft, "status": Status.CONFLICT if stale else prepared.status})
    card = outcome_card(shown) if stale else approval_card(shown)
    channel, ts = rt.messenger.post(route.channel, card)
    copies = [MessageRef(channel=c, ts=t) for c, t in (rt.messenger.post(dm, card) for dm in route.copies_to)]
    done = rt.store.transition(
        proposal_id,
        allowed=[Status.QUEUED],
        to=Status.CONFLICT if stale else Status.AWAITING_APPROVAL,
        event="conflict" if stale else "card_posted",
        actor=ACTOR,
        detail={"channel": channel, "ts": ts},
        card=draft.model_copy(update={"channel": channel, "ts": ts, "copies": copies}),
        **({} if stale else expiry.deadlines(rt, rt.clock())),
    )
    if done.done and not stale:
        posted = rt.store.require(proposal_id)
        expiry.schedule(rt, posted)
        _supersede_older(rt, posted)


def _supersede_older(rt: Runtime, proposal: Proposal) -> None:
    """An agent's newer proposal for the same record and property replaces its pending one."""
    mine = {change.property for change in proposal.changes}
    record_ids = rt.store.ids_for_record(proposal.object_type, proposal.record_id)
    older = [rt.store.get(pid) for pid in record_ids[: record_ids.index(proposal.id)]]
    replaced = [
        other
        for other in older
        if other and other.agent == proposal.agent and mine & {change.property for change in other.changes}
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


# -- writing ---------------------------------------------------------------------------------------


def apply_proposal(rt: Runtime, proposal_id: str, final_attempt: bool = True) -> None:
    proposal = rt.store.require(proposal_id)
    if proposal.status is not Status.APPROVED:
        return
    try:
        if proposal.action is Action.UPDATE:
            if not _apply_update(rt, proposal):
                return
        else:
            _create_engagement(rt, proposal)
    except (HubSpotError, WriteNotTaken) as error:
        if isinstance(error, HubSpotError) and error.retryable and not final_attempt:
            raise
        _fail(rt, proposal, Status.APPROVED, str(error))
        return
    detail = {c.property: f"{c.old or ''} -> {c.approved}" for c in proposal.changes}
    rt.store.transition(proposal_id, allowed=[Status.APPROVED], to=Status.APPLIED, event="applied", actor=ACTOR, detail=detail)
    if proposal.tier is Tier.AUTO:
        digest.add(rt, rt.store.require(proposal_id))
    else:
        rt.queue.enqueue("publish_outcome", proposal_id, "applied")


def _apply_update(rt: Runtime, proposal: Proposal) -> bool:
    """Write the approved values unless one moved since the card; False when it stopped on a conflict."""
    schema = rt.hubspot.schema(proposal.object_type)
    names = [change.property for change in proposal.changes]
    record = rt.hubspot.read(proposal.object_type, proposal.record_id, names)
    moved = [c for c in proposal.changes if not _holds(schema, record, c, c.old) and not _holds(schema, record, c, c.approved)]
    if moved:
        _conflict(rt, proposal, schema, record)
        return False
    pending = {c.property: c.approved for c in proposal.changes if not _holds(schema, record, c, c.approved)}
    write_properties(rt, schema, proposal.object_type, proposal.record_id, pending, record)
    return True


def _holds(schema: Schema, record: Record, change: Change, value: str | None) -> bool:
    return schema.same(change.property, record.get(change.property), value)


def _conflict(rt: Runtime, proposal: Proposal, schema: Schema, record: Record) -> None:
    changes = [
        c.model_copy(update={"current": record.get(c.property), "current_display": schema.display(c.property, record.get(c.property))})
        if not _holds(schema, record, c, c.old)
        else c
        for c in proposal.changes
    ]
    detail = {c.property: f"now {c.current or ''}" for c in changes if c.current_display}
    done = rt.store.transition(
        proposal.id, allowed=[Status.APPROVED], to=Status.CONFLICT, event="conflict", actor=ACTOR, detail=detail, changes=changes
    )
    if done.done:
        rt.queue.enqueue("publish_outcome", proposal.id, "conflict")


def write_properties(
    rt: Runtime, schema: Schema, object_type: str, record_id: str, values: dict[str, str], current: Record
) -> None:
    """Write `values` and check HubSpot kept them. A lifecycle stage moving backward is cleared first, as HubSpot requires."""
    if not values:
        return
    backward = LIFECYCLE in values and schema.is_backward(LIFECYCLE, current.get(LIFECYCLE), values[LIFECYCLE])
    if backward:
        rt.hubspot.update(object_type, record_id, {LIFECYCLE: ""})
    after = rt.hubspot.update(object_type, record_id, values)
    if any(name not in after.properties for name in values):  # HubSpot's answer left one out: read it back
        after = rt.hubspot.read(object_type, record_id, values)
    refused = [name for name, value in values.items() if not schema.same(name, after.get(name), value)]
    if refused:
        shown = ", ".join(f"{schema.label(n)} is {schema.display(n, after.get(n))}" for n in refused)
        raise WriteNotTaken(f"HubSpot did not keep the new value ({shown})")


def _create_engagement(rt: Runtime, proposal: Proposal) -> None:
    if proposal.created_object_id:
        return
    now_ms = str(int(rt.clock().timestamp() * 1000))
    owner = proposal.record.owner_id if proposal.record else None
    if proposal.action is Action.CREATE_NOTE and proposal.note:
        kind, properties = "notes", {"hs_note_body": proposal.note.body, "hs_timestamp": now_ms}
    elif proposal.task:
        task = proposal.task
        due = str(_midnight_ms(task.due)) if task.due else now_ms
        kind = "tasks"
        properties = {"hs_task_subject": task.subject, "hs_task_body": task.body, "hs_timestamp": due, "hs_task_status": "NOT_STARTED"}
        owner = task.owner_id or owner
    else:
        raise WriteNotTaken(f"proposal {proposal.id} has nothing to create")
    if owner:
        properties[OWNER_PROPERTY] = owner
    created = rt.hubspot.create_engagement(kind, properties, proposal.object_type, proposal.record_id)
    rt.store.transition(proposal.id, allowed=None, to=None, event="created", actor=ACTOR, detail={kind: created}, created_object_id=created)
    proposal.created_object_id = created


def _midnight_ms(day: date) -> int:
    return int(datetime.combine(day, time.min, UTC).timestamp() * 1000)


def _fail(rt: Runtime, proposal: Proposal, expected: Status, why: str) -> None:
    done = rt.store.transition(proposal.id, allowed=[expected], to=Status.FAILED, event="failed", actor=ACTOR, detail={"error": why}, error=why)
    if done.done:
        rt.queue.enqueue("publish_outcome", proposal.id, "failed")


# -- undo ------------------------------------------------------------------------------------------


def undo_proposal(rt: Runtime, proposal_id: str, final_attempt: bool = True) -> None:
    """Write the old values back (or, undoing an undo, the approved ones again) unless they drifted."""
    proposal = rt.store.require(proposal_id)
    if proposal.status is not Status.UNDOING:
        return
    redo = proposal.undo_target == "new"
    try:
        if proposal.action is Action.UPDATE:
            if not _flip(rt, proposal, redo):
                return
        elif proposal.created_object_id:
            kind = "notes" if proposal.action is Action.CREATE_NOTE else "tasks"
            rt.hubspot.archive(kind, proposal.created_object_id)
    except (HubSpotError, WriteNotTaken) as error:
        if isinstance(error, HubSpotError) and error.retryable and not final_attempt:
            raise
        _refuse_undo(rt, proposal, f"HubSpot refused the write: {error}")
        return
    if redo:
        detail = {c.property: f"{c.old or ''} -> {c.approved}" for c in proposal.changes}
        event, final = "reapplied", Status.APPLIED
    else:
        detail = {c.property: f"{c.approved} -> {c.old or ''}" for c in proposal.changes}
        event, final = "undone", Status.UNDONE
    rt.store.transition(proposal_id, allowed=[Status.UNDOING], to=final, event=event, actor=proposal.undone_by or ACTOR, detail=detail)
    rt.queue.enqueue("publish_outcome", proposal_id, f"{event}-{len(proposal.events)}")


def _flip(rt: Runtime, proposal: Proposal, redo: bool) -> bool:
    """Move each property from one side of the change to the other; False when one drifted since."""
    schema = rt.hubspot.schema(proposal.object_type)
    names = [change.property for change in proposal.changes]
    record = rt.hubspot.read(proposal.object_type, proposal.record_id, names, with_history=names)
    sides = [(c, c.old or "", c.approved) if redo else (c, c.approved, c.old or "") for c in proposal.changes]
    drifted = [c for c, source, target in sides if not _holds(schema, record, c, source) and not _holds(schema, record, c, target)]
    if drifted:
        _refuse_undo(rt, proposal, "; ".join(_drift(schema, record, c) for c in drifted))
        return False
    pending = {c.property: target for c, _, target in sides if not _holds(schema, record, c, target)}
    write_properties(rt, schema, proposal.object_type, proposal.record_id, pending, record)
    return True


def _drift(schema: Schema, record: Record, change: Change) -> str:
    """Who or what changed a property since hsgate wrote it, from HubSpot's property history."""
    now = schema.display(change.property, record.get(change.property))
    entries = record.history.get(change.property) or []
    latest = entries[0] if entries else None
    if latest is None:
        return f"{change.label} is now {now}"
    owner = schema.owner_by_user_id(latest.updated_by_user_id)
    who = owner.name if owner else (f"HubSpot user {latest.updated_by_user_id}" if latest.updated_by_user_id else None)
    source = (latest.source_type or "an unknown source").replace("_", " ").lower()
    by = f"{who} ({source})" if who else source
    return f"{change.label} is now {now}, changed by {by} at {latest.timestamp}"


def _refuse_undo(rt: Runtime, proposal: Proposal, why: str) -> None:
    back = Status.UNDONE if proposal.undo_target == "new" else Status.APPLIED
    done = rt.store.transition(
        proposal.id, allowed=[Status.UNDOING], to=back, event="undo_refused", actor=ACTOR, detail={"why": why}, error=why
    )
    if done.done:
        rt.queue.enqueue("publish_outcome", proposal.id, f"undo_refused-{len(proposal.events)}")


# -- Slack -----------------------------------------------------------------------------------------

OUTCOMES = {"applied", "reapplied", "undone", "undo_refused", "conflict", "failed", "rejected", "expired", "superseded"}


def publish_outcome(rt: Runtime, proposal_id: str) -> None:
    """Show the latest outcome: the card loses its buttons, and the card's thread records what happened.

    Only the newest thread reply carries an Undo (or Re-apply) button, so no stale button stays live.
    """
    proposal = rt.store.require(proposal_id)
    event = next(e for e in reversed(proposal.events) if e.type in OUTCOMES)
    reply = audit_reply(proposal, event, in_thread=proposal.card is not None)
    if proposal.rival_of and proposal.status is not Status.APPLIED and proposal.card:
        # An alternative on another proposal's card: that card stays; it only loses this option.
        rt.queue.enqueue("refresh_card", proposal.rival_of, f"rival-{proposal.id}-{proposal.status.value}")
        rt.messenger.post(proposal.card.channel, reply, thread_ts=proposal.card.ts)
        return
    if proposal.undo_reply:
        rt.messenger.update(proposal.undo_reply.channel, proposal.undo_reply.ts, text_only(proposal.undo_reply.text))
    if proposal.card and proposal.card.ts:
        _update_cards(rt, proposal.card, outcome_card(proposal))
        channel, ts = rt.messenger.post(proposal.card.channel, reply, thread_ts=proposal.card.ts)
    elif proposal.notify_channel and event.type != "applied":
        channel, ts = rt.messenger.post(proposal.notify_channel, reply)  # auto-applied: no card, no thread
    else:
        return
    kept = ReplyRef(channel=channel, ts=ts, text=reply.text) if undoable(proposal) else None
    rt.store.annotate(proposal_id, undo_reply=kept)


def _update_cards(rt: Runtime, card: CardRef, content: Card) -> None:
    for message in [card, *card.copies]:
        rt.messenger.update(message.channel, message.ts, content)


def refresh_card(rt: Runtime, proposal_id: str) -> None:
    """Redraw a card still waiting: approval progress, and the alternatives still open."""
    proposal = rt.store.require(proposal_id)
    if proposal.status is Status.AWAITING_APPROVAL and proposal.card:
        _update_cards(rt, proposal.card, card_with_rivals(rt, proposal))

