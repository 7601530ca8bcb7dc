"""What a click or a command decides. Fast (Redis only), so Slack handlers can ack at once.

Each function returns the sentence the person who acted is shown ephemerally; the slow work
(writing to HubSpot, updating the card) is queued.
"""

from __future__ import annotations

from app import home
from app.cards import mention, slack_date
from app.models import Action, Change, Proposal, Status
from app.routing import may_decide
from app.runtime import Runtime


def decidable(rt: Runtime, proposal_id: str, user: str) -> Proposal | str:
    """The proposal, when `user` may decide it now; else why not (recorded as an event when they may not)."""
    proposal = rt.store.get(proposal_id)
    if proposal is None:
        return f"Proposal `{proposal_id}` does not exist."
    if not may_decide(rt, proposal, user):
        rt.store.transition(proposal_id, allowed=None, to=None, event="refused", actor=user, detail={"why": "not an approver"})
        return f"You may not decide this proposal. {_who_may(proposal)}"
    if proposal.status is not Status.AWAITING_APPROVAL:
        return _already(rt, proposal_id)
    return proposal


def approve(rt: Runtime, proposal_id: str, user: str, edited: dict[str, str] | None = None) -> str | None:
    """Count `user`'s approval (of the edited values, when given); None when the card will show the outcome."""
    proposal = decidable(rt, proposal_id, user)
    if isinstance(proposal, str):
        return proposal
    fields = {"changes": _with_edits(rt, proposal, edited)} if edited else {}
    approval = rt.store.approve(proposal_id, user, event="approval_edited" if edited else "approval", **fields)
    if approval.recorded:
        home.note_decision(rt, user, proposal_id)
    if approval.final:
        _close_rivals(rt, proposal, Status.SUPERSEDED, user, superseded_by=proposal.id)
        rt.queue.enqueue("apply_proposal", proposal_id, "approved")
        return None
    if approval.recorded:
        rt.queue.enqueue("refresh_card", proposal_id, f"approval-{approval.count}")
        missing = proposal.approvals_required - approval.count
        return f"Your approval is recorded; {missing} more needed."
    if approval.already_approved_by_user:
        return "You have approved this already; it waits for another approver."
    return _already(rt, proposal_id)


def _with_edits(rt: Runtime, proposal: Proposal, edited: dict[str, str]) -> list[Change]:
    schema = rt.hubspot.schema(proposal.object_type, allow_stale=True)
    changes = []
    for change in proposal.changes:
        value = edited.get(change.property, change.new)
        if schema.same(change.property, value, change.new):
            changes.append(change.model_copy(update={"edited": None, "edited_display": ""}))
        else:
            changes.append(change.model_copy(update={"edited": value, "edited_display": schema.display(change.property, value)}))
    return changes


def reject(rt: Runtime, proposal_id: str, user: str, reason: str | None = None) -> str | None:
    proposal = decidable(rt, proposal_id, user)
    if isinstance(proposal, str):
        return proposal
    done = rt.store.transition(
        proposal_id,
        allowed=[Status.AWAITING_APPROVAL],
        to=Status.REJECTED,
        event="rejected",
        actor=user,
        detail={"reason": reason} if reason else None,
        decided_by=user,
        decided_at=rt.clock(),
        reject_reason=reason or None,
    )
    if not done.done:
        return _already(rt, proposal_id)
    home.note_decision(rt, user, proposal_id)
    if not proposal.rival_of:  # rejecting the card rejects the alternatives on it too
        _close_rivals(rt, proposal, Status.REJECTED, user, decided_by=user, decided_at=rt.clock(), reject_reason=reason or None)
    rt.queue.enqueue("publish_outcome", proposal_id, "rejected")
    return None


def _close_rivals(rt: Runtime, decided: Proposal, status: Status, user: str, **fields: object) -> None:
    """End the other proposals that share `decided`'s card; its own outcome redraws that card."""
    primary = rt.store.require(decided.rival_of or decided.id)  # read now: a rival may have just joined
    for other in [primary.id, *primary.rivals]:
        if other != decided.id:
            rt.store.transition(
                other,
                allowed=[Status.QUEUED, Status.AWAITING_APPROVAL],
                to=status,
                event=status.value,
                actor=user,
                detail={"card_decided_by": decided.id},
                **fields,
            )


def _already(rt: Runtime, proposal_id: str) -> str:
    proposal = rt.store.require(proposal_id)
    by = f" by {mention(proposal.decided_by)}" if proposal.decided_by else ""
    when = f" {slack_date(proposal.decided_at)}" if proposal.decided_at else ""
    return f"Nothing changed: this proposal is already *{proposal.status.value}*{by}{when}."


def _who_may(proposal: Proposal) -> str:
    if not proposal.approvers:
        return "Only hsgate admins may."
    return "Only " + ", ".join(mention(user) for user in proposal.approvers) + " may."


def request_undo(rt: Runtime, proposal_id: str, user: str) -> str:
    """Queue an undo for the approver, the owner or an admin: applied values go back to the old ones,
    and undoing an undone update applies it again. Either way the worker checks for drift first."""
    proposal = rt.store.get(proposal_id)
    if proposal is None:
        return f"Proposal `{proposal_id}` does not exist."
    if not (may_decide(rt, proposal, user) or user == proposal.decided_by):
        rt.store.transition(
            proposal_id, allowed=None, to=None, event="refused", actor=user, detail={"why": "undo by non-approver"}
        )
        return f"You may not undo this proposal. {_who_may(proposal)}"
    redo = proposal.status is Status.UNDONE and proposal.action is Action.UPDATE
    done = rt.store.transition(
        proposal_id,
        allowed=[Status.UNDONE if redo else Status.APPLIED],
        to=Status.UNDOING,
        event="redo_requested" if redo else "undo_requested",
        actor=user,
        undone_by=user,
        undo_target="new" if redo else "old",
    )
    if not done.done:
        if done.previous is Status.UNDOING:
            return f"Proposal `{proposal_id}` is already being undone."
        if done.previous is Status.UNDONE:
            return f"Proposal `{proposal_id}` is already undone."
        return f"Only applied proposals can be undone; `{proposal_id}` is {done.previous.value if done.previous else 'unknown'}."
    rt.queue.enqueue("undo_proposal", proposal_id, f"undo-{len(proposal.events)}")
    if redo:
        return f"Re-applying `{proposal_id}`: the approved values are being written again. The card's thread will confirm."
    return f"Undoing `{proposal_id}`: the earlier values are being written back. The card's thread will confirm."
