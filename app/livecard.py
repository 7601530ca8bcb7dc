"""A waiting card as it stands now: the proposal and the alternatives still open on it."""

from __future__ import annotations

from app.cards import Card, approval_card
from app.models import Proposal, Status
from app.runtime import Runtime


def card_with_rivals(rt: Runtime, proposal: Proposal) -> Card:
    rivals = rt.store.get_many(proposal.rivals)
    return approval_card(proposal, [r for r in rivals if r is not None and r.status is Status.AWAITING_APPROVAL])
