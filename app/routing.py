"""Who sees a proposal's card and who may decide it."""

from __future__ import annotations

from dataclasses import dataclass

from app.cards import OBJECT_NOUNS
from app.models import Proposal
from app.runtime import Runtime
from app.schema import Owner


class NoRoute(Exception):
    """Nobody can be asked: the message says what to configure."""


@dataclass(frozen=True)
class Route:
    channel: str  # where the card is posted (a D... DM or a C... channel)
    approvers: list[str]  # Slack user ids who may decide
    approver_user: str | None = None  # the owner's Slack user, when the card is in their DM
    fallback_reason: str | None = None


def route_card(rt: Runtime, proposal: Proposal, owner: Owner | None) -> Route:
    """The owner's DM; the fallback channel when the record has no owner reachable in Slack."""
    admins = rt.settings.hsgate_admins
    noun = OBJECT_NOUNS[proposal.object_type].lower()
    if owner is None:
        reason = f"the {noun} has no owner in HubSpot"
    else:
        user = rt.messenger.user_for_email(owner.email) if owner.email else None
        if user is not None:
            return Route(channel=rt.messenger.dm_channel(user), approvers=_unique([user, *admins]), approver_user=user)
        reason = f"its owner {owner.name} has no Slack account for {owner.email or 'their HubSpot email'}"
    fallback = rt.settings.hsgate_fallback_channel
    if not fallback:
        raise NoRoute(f"{reason}, and HSGATE_FALLBACK_CHANNEL is not set")
    return Route(channel=fallback, approvers=list(admins), fallback_reason=reason)


def may_decide(rt: Runtime, proposal: Proposal, user: str) -> bool:
    return user in proposal.approvers or user in rt.settings.hsgate_admins


def _unique(users: list[str]) -> list[str]:
    return list(dict.fromkeys(users))
