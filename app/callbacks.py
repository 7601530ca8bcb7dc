"""Agents learn outcomes without polling: each status change is POSTed to the proposal's callback_url.

The body is signed with the agent's own token (HMAC-SHA256 over "<timestamp>.<body>"), so the agent
can check it came from hsgate and is fresh. Deliveries are retried with backoff by RQ.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import TYPE_CHECKING

import httpx
from rq import Retry

from app.models import Status

if TYPE_CHECKING:  # the runtime wires these functions into its store
    from app.runtime import Runtime

SIGNATURE_HEADER = "X-Hsgate-Signature"
TIMESTAMP_HEADER = "X-Hsgate-Timestamp"
CALLBACK_RETRY = Retry(max=5, interval=[2, 10, 60, 300, 900])


class CallbackRefused(Exception):
    """The agent's endpoint did not answer 2xx."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def notify(rt: Runtime, proposal_id: str, status: Status) -> None:
    """Queue a delivery of `status` when the proposal asked for callbacks."""
    if rt.store.callback_url(proposal_id):
        rt.queue.enqueue("deliver_callback", f"{proposal_id}-{status.value}", secrets.token_hex(4), retry=CALLBACK_RETRY)


def deliver(rt: Runtime, subject: str, final_attempt: bool = True) -> None:
    proposal_id, status = subject.split("-", 1)
    proposal = rt.store.require(proposal_id)
    if not proposal.callback_url:
        return
    secret = next(token for token, agent in rt.settings.hsgate_agent_tokens.items() if agent == proposal.agent)
    body = json.dumps({"id": proposal.id, "status": status, "proposal": proposal.public_view()}).encode()
    timestamp = str(int(rt.clock().timestamp()))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}
    try:
        answer = httpx.post(proposal.callback_url, content=body, headers=headers, timeout=10)
        if answer.status_code >= 300:
            raise CallbackRefused(f"the callback URL answered {answer.status_code}")
    except (httpx.HTTPError, CallbackRefused) as error:
        if not final_attempt:
            raise
        why = str(error) if isinstance(error, CallbackRefused) else type(error).__name__
        rt.store.transition(
            proposal_id, allowed=None, to=None, event="callback_failed", actor="hsgate", detail={"status": status, "why": why}
        )
