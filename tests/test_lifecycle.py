"""A decision over time: reminders, escalation, expiry (on a hand-moved clock), and signed callbacks."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.callbacks import sign
from tests.conftest import AGENT_TOKEN, Gate
from tests.emulators.loopback import LoopbackServer
from tests.test_flow import CLOSE_ACME, block_text, buttons

LIFECYCLE = '[lifecycle]\nexpire_after = "3s"\nremind_after = "1s"\n'


def test_a_proposal_nobody_decides_expires_after_its_ttl(gate: Gate) -> None:
    gate.use_policy(LIFECYCLE)
    proposal = gate.carded(CLOSE_ACME)

    gate.clock.advance(seconds=3)
    gate.run_scheduled()

    expired = gate.proposal(proposal.id)
    assert expired.status == "expired"
    assert buttons(gate.card(proposal).blocks) == []
    assert ":zzz: *Expired*" in block_text(gate.card(proposal).blocks)
    assert gate.thread(proposal)[-1].startswith("Expired <!date^")
    assert gate.hubspot.writes() == []


def test_a_proposal_is_not_expired_before_its_ttl(gate: Gate) -> None:
    gate.use_policy(LIFECYCLE)
    proposal = gate.carded(CLOSE_ACME)

    gate.clock.advance(seconds=2)
    gate.run_scheduled()

    assert gate.proposal(proposal.id).status == "awaiting_approval"
    assert any(job.startswith(f"expire_proposal-{proposal.id}") for job in gate.rt.queue.rq.scheduled_job_registry.get_job_ids())


def test_an_expired_proposal_can_no_longer_be_approved(gate: Gate) -> None:
    gate.use_policy(LIFECYCLE)
    proposal = gate.carded(CLOSE_ACME)
    gate.clock.advance(seconds=3)

    gate.run_scheduled()

    with pytest.raises(AssertionError, match="no live button"):
        gate.click(proposal, "U0MARIA", "approve")


def test_the_approver_is_reminded_in_the_thread_before_expiry(gate: Gate) -> None:
    gate.use_policy(LIFECYCLE)
    proposal = gate.carded(CLOSE_ACME)

    gate.clock.advance(seconds=1)
    gate.run_scheduled()

    [reminder] = gate.thread(proposal)
    assert reminder.startswith("<@U0MARIA> <@U0ADMIN>: reminder, this proposal still waits for a decision. It expires <!date^")
    assert gate.proposal(proposal.id).status == "awaiting_approval"


def test_an_undecided_proposal_is_escalated_to_the_backup_channel(gate: Gate) -> None:
    gate.use_policy(LIFECYCLE + 'escalate_to = "C0BACKUP"\n')
    proposal = gate.carded(CLOSE_ACME)

    gate.clock.advance(seconds=1)
    gate.run_scheduled()

    [copy] = gate.slack.messages("C0BACKUP")
    assert [b["text"]["text"] for b in buttons(copy.blocks)] == ["Approve", "Edit", "Reject"]
    assert gate.thread(proposal)[-1] == "Escalated to <#C0BACKUP>: nobody has decided yet."


def test_a_backup_approver_may_decide_once_escalated(gate: Gate) -> None:
    gate.use_policy(LIFECYCLE + 'escalate_to = "U0SAM"\n')
    proposal = gate.carded(CLOSE_ACME)
    gate.clock.advance(seconds=1)
    gate.run_scheduled()
    [copy] = gate.slack.messages("D0SAM")

    gate.slack.click("U0SAM", copy.channel, copy.ts, "hsgate_approve", proposal.id)
    gate.drain()

    assert gate.proposal(proposal.id).status == "applied"
    assert buttons(gate.slack.message(copy.channel, copy.ts).blocks) == []


# -- callbacks -------------------------------------------------------------------------------------


class Receiver:
    """An agent's callback endpoint: records what arrives, and can fail the first deliveries."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0
        self.server = LoopbackServer(Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])).start()
        self.url = f"{self.server.url}/hook"

    async def hook(self, request: Request) -> Response:
        if self.fail_first:
            self.fail_first -= 1
            return Response(status_code=503)
        self.received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    def statuses(self) -> list[str]:
        return [json.loads(body)["status"] for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.stop()


def test_every_status_change_is_posted_to_the_callback_url(gate: Gate, receiver: Receiver) -> None:
    proposal = gate.carded(CLOSE_ACME | {"callback_url": receiver.url})
    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    assert receiver.statuses() == ["queued", "awaiting_approval", "approved", "applied"]
    assert json.loads(receiver.received[-1][1])["proposal"]["changes"][0]["new"] == "closedwon"


def test_callbacks_are_signed_with_the_agents_token(gate: Gate, receiver: Receiver) -> None:
    gate.carded(CLOSE_ACME | {"callback_url": receiver.url})

    headers, body = receiver.received[0]
    assert headers["x-hsgate-signature"] == sign(AGENT_TOKEN, headers["x-hsgate-timestamp"], body)
    assert AGENT_TOKEN not in body.decode()


def test_a_failed_callback_is_retried_until_it_is_delivered(gate: Gate, receiver: Receiver) -> None:
    receiver.fail_first = 1
    gate.carded(CLOSE_ACME | {"callback_url": receiver.url})
    assert receiver.statuses() == ["awaiting_approval"]

    gate.run_scheduled()

    assert sorted(receiver.statuses()) == ["awaiting_approval", "queued"]


def test_a_callback_url_that_is_not_http_is_refused(gate: Gate) -> None:
    answer = gate.propose(CLOSE_ACME | {"callback_url": "file:///etc/passwd"})

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "callback_url"
