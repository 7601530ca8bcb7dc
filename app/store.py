"""The proposal store and its state machine: every status change is one atomic Lua script in Redis.

A proposal lives in a hash (`hsgate:proposal:{id}`, each field JSON), its history in a list beside
it, and every event is also appended to the `hsgate:audit` stream, so the audit log can be read
(and later exported) without scanning proposals. A transition names the statuses it may leave, so a
second click, a second approver or a retried job finds the transition taken and changes nothing.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from app.models import Event, Proposal, Status

Clock = Callable[[], datetime]

AUDIT_STREAM = "hsgate:audit"
AUDIT_MAXLEN = 1_000_000


def utc_now() -> datetime:
    return datetime.now(UTC)


def _proposal_key(pid: str) -> str:
    return f"hsgate:proposal:{pid}"


def _keys(pid: str) -> list[str]:
    base = _proposal_key(pid)
    return [base, f"{base}:events", AUDIT_STREAM, f"{base}:approvals"]


def _idempotency_key(agent: str, key: str) -> str:
    return f"hsgate:idempotency:{agent}:{key}"


def _status_index(status: str) -> str:
    return f"hsgate:status:{status}"


# Shared Lua prelude: record an event (history list, audit stream, status index) after a change.
_RECORD_EVENT = (
    """
local function record_event(pid, event, old_status, new_status, score)
  redis.call('RPUSH', KEYS[2], event)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', %d, '*', 'proposal', pid, 'event', event)
  if new_status ~= old_status then
    if old_status ~= '' then redis.call('ZREM', 'hsgate:status:' .. old_status, pid) end
    redis.call('ZADD', 'hsgate:status:' .. new_status, score, pid)
  end
end
local function status_of(raw)
  if not raw then return '' end
  return string.sub(raw, 2, -2)
end
"""
    % AUDIT_MAXLEN
)

# KEYS: hash, events, audit, approvals, idempotency key ('' when none), record index
# ARGV: pid, event, score, field, value, ...
_CREATE = (
    _RECORD_EVENT
    + """
if KEYS[5] ~= '' then
  local existing = redis.call('GET', KEYS[5])
  if existing then return {0, existing} end
  redis.call('SET', KEYS[5], ARGV[1])
end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('RPUSH', KEYS[6], ARGV[1])
record_event(ARGV[1], ARGV[2], '', status_of(redis.call('HGET', KEYS[1], 'status')), ARGV[3])
return {1, ARGV[1]}
"""
)

# ARGV: pid, event, score, allowed (space separated, '*' for any), new status ('' keeps it), field, value, ...
_TRANSITION = (
    _RECORD_EVENT
    + """
local current = status_of(redis.call('HGET', KEYS[1], 'status'))
if current == '' then return {0, ''} end
if ARGV[4] ~= '*' and not string.find(' ' .. ARGV[4] .. ' ', ' ' .. current .. ' ', 1, true) then
  return {0, current}
end
local new_status = current
if ARGV[5] ~= '' then
  new_status = ARGV[5]
  redis.call('HSET', KEYS[1], 'status', '"' .. new_status .. '"')
end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
record_event(ARGV[1], ARGV[2], current, new_status, ARGV[3])
return {1, current}
"""
)

# ARGV: pid, event, score, user, decided_by JSON, decided_at JSON, field, value, ... (set with the approval)
# Returns {code, status, approvals}: 1 approved (last approval), 2 approval recorded (more needed),
# 3 this user approved already, 0 not awaiting approval.
_APPROVE = (
    _RECORD_EVENT
    + """
local current = status_of(redis.call('HGET', KEYS[1], 'status'))
if current ~= 'awaiting_approval' then return {0, current, redis.call('LLEN', KEYS[4])} end
if redis.call('LPOS', KEYS[4], ARGV[4]) then return {3, current, redis.call('LLEN', KEYS[4])} end
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local count = redis.call('RPUSH', KEYS[4], ARGV[4])
local needed = tonumber(redis.call('HGET', KEYS[1], 'approvals_required') or '1')
if count < needed then
  record_event(ARGV[1], ARGV[2], current, current, ARGV[3])
  return {2, current, count}
end
redis.call('HSET', KEYS[1], 'status', '"approved"', 'decided_by', ARGV[5], 'decided_at', ARGV[6])
record_event(ARGV[1], ARGV[2], current, 'approved', ARGV[3])
return {1, 'approved', count}
"""
)


@dataclass(frozen=True)
class Transition:
    """Whether a transition happened, and the status the proposal had when it was tried."""

    done: bool
    previous: Status | None


@dataclass(frozen=True)
class Approval:
    recorded: bool  # this click counted
    final: bool  # it was the last approval needed: the proposal is now approved
    already_approved_by_user: bool
    status: Status
    count: int


StatusListener = Callable[[str, Status], None]


class ProposalStore:
    def __init__(self, redis: Redis, clock: Clock = utc_now, on_status: StatusListener | None = None) -> None:
        self.redis = redis
        self.clock = clock
        # Told of every status a proposal enters, after the transition: agents' callbacks hang here.
        self.on_status: StatusListener = on_status or (lambda pid, status: None)
        self._create = redis.register_script(_CREATE)
        self._transition = redis.register_script(_TRANSITION)
        self._approve = redis.register_script(_APPROVE)

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(6)

    def _event(self, type_: str, actor: str, detail: dict[str, str] | None) -> tuple[str, float]:
        now = self.clock()
        event = Event(at=now, type=type_, actor=actor, detail=detail or {})
        return event.model_dump_json(), now.timestamp()

    def create(self, proposal: Proposal, actor: str) -> tuple[Proposal, bool]:
        """Store a new proposal, or return the one already stored under its idempotency key."""
        fields = proposal.model_dump(mode="json", exclude={"events", "approvals"})
        idem_key = _idempotency_key(proposal.agent, proposal.idempotency_key) if proposal.idempotency_key else ""
        event, score = self._event("proposed", actor, {"agent": proposal.agent})
        keys = [*_keys(proposal.id), idem_key, f"hsgate:record:{proposal.object_type}:{proposal.record_id}"]
        created, pid = self._create(keys=keys, args=[proposal.id, event, score, *_flatten(fields)])
        stored = self.get(text(pid))
        assert stored is not None, "a created proposal is readable"
        if created:
            self.on_status(stored.id, stored.status)
        return stored, bool(created)

    def callback_url(self, pid: str) -> str | None:
        raw = self.redis.hget(_proposal_key(pid), "callback_url")
        return None if raw is None else json.loads(raw)

    def find_by_idempotency_key(self, agent: str, key: str) -> Proposal | None:
        pid = self.redis.get(_idempotency_key(agent, key))
        return None if pid is None else self.get(text(pid))

    def get(self, pid: str) -> Proposal | None:
        return self.get_many([pid])[0]

    def get_many(self, pids: Sequence[str]) -> list[Proposal | None]:
        """Proposals in one round trip, None for ids that do not exist, in the order asked."""
        with self.redis.pipeline(transaction=False) as pipe:
            for pid in pids:
                hash_key, events_key, _, approvals_key = _keys(pid)
                pipe.hgetall(hash_key)
                pipe.lrange(events_key, 0, -1)
                pipe.lrange(approvals_key, 0, -1)
            answers = pipe.execute()
        return [_proposal(*answers[i : i + 3]) for i in range(0, len(answers), 3)]

    def pending_for_record(self, object_type: str, record_id: str, before: str) -> list[Proposal]:
        """The proposals for a record made before `before` that still wait (queued or awaiting approval)."""
        ids = self.ids_for_record(object_type, record_id)
        earlier = ids[: ids.index(before)] if before in ids else ids
        with self.redis.pipeline(transaction=False) as pipe:
            for pid in earlier:
                pipe.hget(_proposal_key(pid), "status")
            statuses = pipe.execute()
        waiting = {json.dumps(status.value) for status in (Status.QUEUED, Status.AWAITING_APPROVAL)}
        pending = [pid for pid, status in zip(earlier, statuses, strict=True) if status is not None and text(status) in waiting]
        return [proposal for proposal in self.get_many(pending) if proposal is not None]

    def require(self, pid: str) -> Proposal:
        proposal = self.get(pid)
        if proposal is None:
            raise KeyError(pid)
        return proposal

    def transition(
        self,
        pid: str,
        *,
        allowed: Iterable[Status] | None,
        to: Status | None,
        event: str,
        actor: str,
        detail: dict[str, str] | None = None,
        **fields: Any,
    ) -> Transition:
        """Move `pid` from one of `allowed` (None: any) to `to` (None: keep), setting `fields`, as one event."""
        allowed_arg = "*" if allowed is None else " ".join(status.value for status in allowed)
        event_json, score = self._event(event, actor, detail)
        encoded = {name: _encode(value) for name, value in fields.items()}
        done, previous = self._transition(
            keys=_keys(pid),
            args=[pid, event_json, score, allowed_arg, to.value if to else "", *_flatten_encoded(encoded)],
        )
        previous_text = text(previous)
        previous_status = Status(previous_text) if previous_text else None
        if done and to is not None and to is not previous_status:
            self.on_status(pid, to)
        return Transition(done=bool(done), previous=previous_status)

    def annotate(self, pid: str, **fields: Any) -> None:
        """Set bookkeeping fields that are not a change of state (where a message was posted): no event."""
        self.redis.hset(_proposal_key(pid), mapping={name: _encode(value) for name, value in fields.items()})

    def approve(self, pid: str, user: str, event: str = "approval", **fields: Any) -> Approval:
        """Count `user`'s approval, setting `fields` with it; the last approval needed moves it to `approved`."""
        event_json, score = self._event(event, user, None)
        now = self.clock()
        encoded = {name: _encode(value) for name, value in fields.items()}
        code, status, count = self._approve(
            keys=_keys(pid),
            args=[pid, event_json, score, user, json.dumps(user), json.dumps(now.isoformat()), *_flatten_encoded(encoded)],
        )
        if code == 1:
            self.on_status(pid, Status.APPROVED)
        return Approval(
            recorded=code in (1, 2),
            final=code == 1,
            already_approved_by_user=code == 3,
            status=Status(text(status)),
            count=int(count),
        )

    def ids_with_status(self, status: Status, limit: int = 100) -> list[str]:
        return [text(pid) for pid in self.redis.zrange(_status_index(status.value), 0, limit - 1)]

    def ids_for_record(self, object_type: str, record_id: str) -> list[str]:
        return [text(pid) for pid in self.redis.lrange(f"hsgate:record:{object_type}:{record_id}", 0, -1)]


def _proposal(raw: dict[bytes, bytes], events: list[bytes], approvals: list[bytes]) -> Proposal | None:
    if not raw:
        return None
    data: dict[str, Any] = {text(k): json.loads(v) for k, v in raw.items()}
    data["events"] = [json.loads(e) for e in events]
    data["approvals"] = [text(a) for a in approvals]
    return Proposal.model_validate(data)


def text(value: Any) -> str:
    """A value read from Redis (bytes, as the client is not decoding) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _encode(value: Any) -> str:
    if hasattr(value, "model_dump"):
        return json.dumps(value.model_dump(mode="json"))
    if isinstance(value, list):
        return json.dumps([v.model_dump(mode="json") if hasattr(v, "model_dump") else v for v in value])
    if isinstance(value, datetime):
        return json.dumps(value.isoformat())
    return json.dumps(value)


def _flatten(fields: dict[str, Any]) -> list[str]:
    return _flatten_encoded({name: json.dumps(value) for name, value in fields.items()})


def _flatten_encoded(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]
