"""The owner's digest of auto-applied changes: one message per channel per period, each line undoable."""

from __future__ import annotations

from datetime import UTC, datetime

from app import home
from app.cards import digest_cards
from app.models import Proposal
from app.runtime import Runtime
from app.store import text


def _key(channel: str) -> str:
    return f"hsgate:digest:{channel}"


def add(rt: Runtime, proposal: Proposal) -> None:
    """Note an auto-applied proposal for its owner's next digest, and make sure that digest is scheduled."""
    home.note_automatic(rt, proposal)
    channel = proposal.notify_channel
    if channel is None:
        return
    rt.redis.rpush(_key(channel), proposal.id)
    period = rt.policy.digest_period.total_seconds()
    boundary = (int(rt.clock().timestamp() // period) + 1) * period
    rt.queue.enqueue("send_digest", channel, str(int(boundary)), at=datetime.fromtimestamp(boundary, UTC))


def send(rt: Runtime, channel: str) -> None:
    """Post what was applied since the last digest; an empty digest posts nothing.

    Entries are removed only once posted, so a Slack failure (and the job's retry) loses none.
    """
    raw_ids = rt.redis.lrange(_key(channel), 0, -1)
    proposals = [p for p in rt.store.get_many([text(pid) for pid in raw_ids]) if p is not None]
    for card in digest_cards(proposals):
        rt.messenger.post(channel, card)
    rt.redis.ltrim(_key(channel), len(raw_ids), -1)
