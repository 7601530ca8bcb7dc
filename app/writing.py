"""Writing to HubSpot: an approved change, an undo, or undoing an undo.

Every function starts from the stored status and does nothing unless the proposal is in the status
it handles, so a job that runs twice (a retry, a worker killed mid-job) never writes twice. Right
before writing, the record is read again: a value that moved since the card was shown is never
overwritten, and an undo never overwrites a value someone changed since.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from app import digest
from app.hubspot import HubSpotError, Record
from app.models import HSGATE, Action, Change, Proposal, Status, Tier
from app.runtime import Runtime
from app.schema import OWNER_PROPERTY, Schema

LIFECYCLE = "lifecyclestage"


class WriteNotTaken(Exception):
    """HubSpot accepted the write, but the record it answered with holds a different value."""


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
        fail(rt, proposal, Status.APPROVED, str(error))
        return
    detail = {c.property: f"{c.old or ''} -> {c.approved}" for c in proposal.changes}
    rt.store.transition(proposal_id, allowed=[Status.APPROVED], to=Status.APPLIED, event="applied", actor=HSGATE, detail=detail)
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
        c.model_copy(
            update={"current": record.get(c.property), "current_display": schema.display(c.property, record.get(c.property))}
        )
        if not _holds(schema, record, c, c.old)
        else c
        for c in proposal.changes
    ]
    detail = {c.property: f"now {c.current or ''}" for c in changes if c.current_display}
    done = rt.store.transition(
        proposal.id, allowed=[Status.APPROVED], to=Status.CONFLICT, event="conflict", actor=HSGATE, detail=detail, changes=changes
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
        properties = {
            "hs_task_subject": task.subject,
            "hs_task_body": task.body,
            "hs_timestamp": due,
            "hs_task_status": "NOT_STARTED",
        }
        owner = task.owner_id or owner
    else:
        raise WriteNotTaken(f"proposal {proposal.id} has nothing to create")
    if owner:
        properties[OWNER_PROPERTY] = owner
    created = rt.hubspot.create_engagement(kind, properties, proposal.object_type, proposal.record_id)
    rt.store.transition(
        proposal.id, allowed=None, to=None, event="created", actor=HSGATE, detail={kind: created}, created_object_id=created
    )


def _midnight_ms(day: date) -> int:
    return int(datetime.combine(day, time.min, UTC).timestamp() * 1000)


def fail(rt: Runtime, proposal: Proposal, expected: Status, why: str) -> None:
    done = rt.store.transition(
        proposal.id, allowed=[expected], to=Status.FAILED, event="failed", actor=HSGATE, detail={"error": why}, error=why
    )
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
    rt.store.transition(
        proposal_id, allowed=[Status.UNDOING], to=final, event=event, actor=proposal.undone_by or HSGATE, detail=detail
    )
    rt.queue.enqueue("publish_outcome", proposal_id, f"{event}-{len(proposal.events)}")


def _flip(rt: Runtime, proposal: Proposal, redo: bool) -> bool:
    """Move each property from one side of the change to the other; False when one drifted since."""
    schema = rt.hubspot.schema(proposal.object_type)
    names = [change.property for change in proposal.changes]
    record = rt.hubspot.read(proposal.object_type, proposal.record_id, names, with_history=names)
    sides = [(c, c.old or "", c.approved) if redo else (c, c.approved, c.old or "") for c in proposal.changes]
    drifted = [
        c for c, source, target in sides if not _holds(schema, record, c, source) and not _holds(schema, record, c, target)
    ]
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
        proposal.id, allowed=[Status.UNDOING], to=back, event="undo_refused", actor=HSGATE, detail={"why": why}, error=why
    )
    if done.done:
        rt.queue.enqueue("publish_outcome", proposal.id, f"undo_refused-{len(proposal.events)}")
