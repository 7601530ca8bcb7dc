"""Who sees a proposal's card and who may decide it.

A card goes to the channel the policy names for the record's owner, the owner's team or the
record's pipeline (in that order), else to the owner's DM, else (no owner, or an owner without a
Slack account) to the fallback channel. The owner, the owner's delegates and the admins may
decide; delegates get a copy of a card sent to a DM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    approver_user: str | None = None  # the owner's Slack user, when known
    fallback_reason: str | None = None
    copies_to: list[str] = field(default_factory=list)  # DM channels that get a copy of the card


def route_card(rt: Runtime, proposal: Proposal, owner: Owner | None, pipeline_id: str | None) -> Route:
    policy = rt.policy
    owner_user = rt.messenger.user_for_email(owner.email) if owner and owner.email else None
    delegates = list(policy.delegates.get(owner.id, ())) if owner else []
    approvers = _unique([*([owner_user] if owner_user else []), *delegates, *rt.admins])
    team_channels = [policy.team_channels[team] for team in (owner.team_ids if owner else ()) if team in policy.team_channels]
    channel = (
        (policy.owner_channels.get(owner.id) if owner else None)
        or next(iter(team_channels), None)
        or (policy.pipeline_channels.get(pipeline_id) if pipeline_id else None)
    )
    if channel:
        return Route(channel=channel, approvers=approvers, approver_user=owner_user)
    if owner_user:
        copies = [rt.messenger.dm_channel(user) for user in delegates if user != owner_user]
        return Route(rt.messenger.dm_channel(owner_user), approvers, owner_user, copies_to=copies)
    noun = OBJECT_NOUNS[proposal.object_type].lower()
    if owner is None:
        reason = f"the {noun} has no owner in HubSpot"
    else:
        reason = f"its owner {owner.name} has no Slack account for {owner.email or 'their HubSpot email'}"
    fallback = rt.settings.hsgate_fallback_channel or policy.fallback_channel
    if not fallback:
        raise NoRoute(f"{reason}, and no fallback channel is set (HSGATE_FALLBACK_CHANNEL or [routing] fallback_channel)")
    return Route(channel=fallback, approvers=approvers, fallback_reason=reason)


def may_decide(rt: Runtime, proposal: Proposal, user: str) -> bool:
    return user in proposal.approvers or user in rt.admins


def _unique(users: list[str]) -> list[str]:
    return list(dict.fromkeys(users))
