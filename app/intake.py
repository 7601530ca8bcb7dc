"""Taking a proposal from an agent: validate it against HubSpot's schema, store it, queue its card."""

from __future__ import annotations

from app.models import Action, Change, Proposal, ProposalIn
from app.runtime import Runtime
from app.validation import ProposalInvalid, normalize_changes


def submit(rt: Runtime, agent: str, body: ProposalIn) -> tuple[Proposal, bool]:
    """Store the proposal and queue its preparation; the same idempotency key returns the first one.

    Raises ProposalInvalid (see `draft`).
    """
    if body.idempotency_key:
        existing = rt.store.find_by_idempotency_key(agent, body.idempotency_key)
        if existing is not None:
            return existing, False
    stored, created = rt.store.create(draft(rt, agent, body), actor=agent)
    if created:
        rt.queue.enqueue("prepare_card", stored.id, "queued")
    return stored, created


def draft(rt: Runtime, agent: str, body: ProposalIn) -> Proposal:
    """The proposal as it would be stored, or ProposalInvalid naming what the scope, policy or HubSpot refuse."""
    names = list(body.changes or {})
    refused = rt.policy.scope_problems(agent, body.object_type, body.action, names) or rt.policy.blocked(
        body.object_type, body.action, names
    )
    if refused:
        raise ProposalInvalid(refused)
    changes: list[Change] = []
    if body.action is Action.UPDATE and body.changes:
        schema = rt.hubspot.schema(body.object_type, allow_stale=True)
        normalized = normalize_changes(schema, body.changes)
        changes = [
            Change(property=name, label=schema.label(name), new=value, new_display=schema.display(name, value))
            for name, value in normalized.items()
        ]
    return Proposal(
        id=rt.store.new_id(),
        agent=agent,
        action=body.action,
        object_type=body.object_type,
        record_id=body.record_id,
        changes=changes,
        note=body.note,
        task=body.task,
        reason=body.reason,
        idempotency_key=body.idempotency_key,
        callback_url=str(body.callback_url) if body.callback_url else None,
        created_at=rt.clock(),
    )
