"""Time limits on a decision: a reminder (and an escalation) before the TTL, then `expired`.

Jobs are scheduled for the exact moment (RQ's scheduler looks every second), and each job checks the
clock and the status again, so a job that runs early, late or twice does the right thing.
"""

from __future__ import annotations

from datetime import datetime

from app.cards import escalation_note, reminder
from app.livecard import card_with_rivals
from app.models import HSGATE, MessageRef, Proposal, Status
from app.runtime import Runtime


def deadlines(rt: Runtime, posted_at: datetime) -> dict[str, datetime | None]:
    """The reminder and expiry times of a card posted at `posted_at`, as the policy sets them."""
    policy = rt.policy
    return {
        "expires_at": posted_at + policy.expire_after if policy.expire_after else None,
        "remind_at": posted_at + policy.remind_after if policy.remind_after else None,
    }


def schedule(rt: Runtime, proposal: Proposal) -> None:
    # The step names when it was scheduled too, so a job woken early can schedule its successor.
    step = f"{rt.clock().timestamp():.0f}"
    if proposal.remind_at:
        rt.queue.enqueue("remind_proposal", proposal.id, step, at=proposal.remind_at)
    if proposal.expires_at:
        rt.queue.enqueue("expire_proposal", proposal.id, step, at=proposal.expires_at)


def expire(rt: Runtime, proposal_id: str) -> None:
    proposal = rt.store.require(proposal_id)
    if proposal.status is not Status.AWAITING_APPROVAL or proposal.expires_at is None:
        return
    if rt.clock() < proposal.expires_at:
        schedule(rt, proposal)  # woken early: go back to sleep until the deadline
        return
    done = rt.store.transition(proposal_id, allowed=[Status.AWAITING_APPROVAL], to=Status.EXPIRED, event="expired", actor=HSGATE)
    if done.done:
        for rival in proposal.rivals:  # the alternatives on its card expire with it
            rt.store.transition(rival, allowed=[Status.AWAITING_APPROVAL], to=Status.EXPIRED, event="expired", actor=HSGATE)
        rt.queue.enqueue("publish_outcome", proposal_id, "expired")


def remind(rt: Runtime, proposal_id: str) -> None:
    """Nudge the approvers in the card's thread; with `escalate_to`, also bring in the backup."""
    proposal = rt.store.require(proposal_id)
    if proposal.status is not Status.AWAITING_APPROVAL or proposal.card is None or proposal.remind_at is None:
        return
    if rt.clock() < proposal.remind_at:
        schedule(rt, proposal)
        return
    done = rt.store.transition(
        proposal_id, allowed=[Status.AWAITING_APPROVAL], to=None, event="reminded", actor=HSGATE, remind_at=None
    )
    if not done.done:
        return
    rt.messenger.post(proposal.card.channel, reminder(proposal), thread_ts=proposal.card.ts)
    if rt.policy.escalate_to:
        _escalate(rt, proposal, rt.policy.escalate_to)


def _escalate(rt: Runtime, proposal: Proposal, target: str) -> None:
    """A backup user becomes an approver and gets a copy in their DM; a backup channel gets a copy."""
    assert proposal.card is not None
    approvers = proposal.approvers
    channel = target
    if target.startswith(("U", "W")):
        approvers = [*approvers, target] if target not in approvers else approvers
        channel = rt.messenger.dm_channel(target)
    escalated = proposal.model_copy(update={"approvers": approvers})
    posted_channel, ts = rt.messenger.post(channel, card_with_rivals(rt, escalated))
    card = proposal.card.model_copy(update={"copies": [*proposal.card.copies, MessageRef(channel=posted_channel, ts=ts)]})
    rt.store.transition(
        proposal.id,
        allowed=[Status.AWAITING_APPROVAL],
        to=None,
        event="escalated",
        actor=HSGATE,
        detail={"to": target},
        approvers=approvers,
        card=card,
    )
    rt.messenger.post(proposal.card.channel, escalation_note(target), thread_ts=proposal.card.ts)
