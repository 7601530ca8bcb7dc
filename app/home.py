"""The App Home tab: each person's pending approvals, recent decisions and automatic changes."""

from __future__ import annotations

from app.models import Proposal, Status
from app.routing import may_decide
from app.runtime import Runtime
from app.store import text
from app.views import home_view

RECENT = 20
PENDING_SCAN = 500


def _decided_key(user: str) -> str:
    return f"hsgate:home:decided:{user}"


def _automatic_key(user: str) -> str:
    return f"hsgate:home:automatic:{user}"


def _remember(rt: Runtime, key: str, proposal_id: str) -> None:
    with rt.redis.pipeline(transaction=True) as pipe:
        pipe.lrem(key, 0, proposal_id)
        pipe.lpush(key, proposal_id)
        pipe.ltrim(key, 0, RECENT - 1)
        pipe.execute()


def note_decision(rt: Runtime, user: str, proposal_id: str) -> None:
    _remember(rt, _decided_key(user), proposal_id)


def note_automatic(rt: Runtime, proposal: Proposal) -> None:
    if proposal.owner_user:
        _remember(rt, _automatic_key(proposal.owner_user), proposal.id)


def pending_for(rt: Runtime, user: str) -> list[Proposal]:
    """Proposals waiting for a decision that `user` may make, oldest first."""
    waiting = rt.store.get_many(rt.store.ids_with_status(Status.AWAITING_APPROVAL, PENDING_SCAN))
    return [p for p in waiting if p is not None and may_decide(rt, p, user)]


def _listed(rt: Runtime, key: str) -> list[Proposal]:
    found = rt.store.get_many([text(raw) for raw in rt.redis.lrange(key, 0, RECENT - 1)])
    return [proposal for proposal in found if proposal is not None]


def publish(rt: Runtime, user: str) -> None:
    view = home_view(pending_for(rt, user), _listed(rt, _decided_key(user)), _listed(rt, _automatic_key(user)))
    rt.messenger.publish_home(user, view)
