"""Showing outcomes in Slack: the card loses its buttons, the thread records what happened."""

from __future__ import annotations

from app.cards import Card, audit_reply, outcome_card, text_only, undoable
from app.livecard import card_with_rivals
from app.models import CardRef, ReplyRef, Status
from app.runtime import Runtime

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
