"""`hsgate`: run the web process, the worker, or both with an embedded Redis (`hsgate run`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from app import intake
from app.config import ConfigError, Settings, load_settings
from app.hubspot import HubSpotError
from app.models import OBJECT_TYPES, ProposalIn
from app.policy import Policy, PolicyError
from app.preparation import with_old_value
from app.redis_server import connect, embedded_url
from app.runtime import Runtime
from app.slack_app import build_bolt_app
from app.validation import ProposalInvalid
from app.web import build_web_app
from workers.worker import run_worker

log = logging.getLogger("hsgate")

WORKER_STOP_S = 30


def _exit_on_sigterm() -> None:
    """SIGTERM ends the process through SystemExit, so `finally` blocks and atexit hooks run.

    Without it, uvicorn re-raises the SIGTERM it caught once it has shut down, and the default
    handler kills the process on the spot, leaving the worker and the embedded Redis running.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def _runtime(settings: Settings, policy: Policy | None = None) -> Runtime:
    return Runtime.build(settings, connect(settings), policy=policy)


def serve_web(settings: Settings) -> None:
    """The web process: Slack's requests (HTTP, or Socket Mode with SLACK_APP_TOKEN) and the agents' API."""
    rt = _runtime(settings)
    bolt = build_bolt_app(rt)
    if settings.slack_app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(bolt, settings.slack_app_token.get_secret_value()).connect()
        log.info("connected to Slack in Socket Mode")
    uvicorn.run(build_web_app(rt, bolt), host="0.0.0.0", port=settings.port, log_level="info")


def work(settings: Settings, burst: bool) -> None:
    run_worker(_runtime(settings), burst=burst)


def run_all(settings: Settings) -> None:
    """One process tree for local use: the embedded Redis (without REDIS_URL), a worker, the web app."""
    env = dict(os.environ)
    if not settings.redis_url:
        env["REDIS_URL"] = embedded_url(settings.hsgate_data_dir)
        settings = settings.model_copy(update={"redis_url": env["REDIS_URL"]})
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env)
    try:
        serve_web(settings)
    finally:
        worker.terminate()  # RQ's warm shutdown: the job in hand finishes first
        try:
            worker.wait(timeout=WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            worker.kill()


def policy_check(settings: Settings, path: Path | None) -> int:
    """Validate a policy file against the live HubSpot schema; 0 when clean, 1 with findings."""
    policy = Policy.load(path or settings.hsgate_policy)
    rt = _runtime(settings, policy)
    problems = policy.check({object_type: rt.hubspot.schema(object_type) for object_type in OBJECT_TYPES})
    for problem in problems:
        print(problem)
    print(f"{policy.source}: {len(problems)} problem(s)" if problems else f"{policy.source}: OK")
    return 1 if problems else 0


def policy_explain(settings: Settings, proposal_json: str, agent: str) -> int:
    """Print which rules fire for a proposal (the agents' API body) and the tier it would get."""
    rt = _runtime(settings)
    body = ProposalIn.model_validate_json(sys.stdin.read() if proposal_json == "-" else proposal_json)
    proposal = intake.draft(rt, agent, body)
    schema = rt.hubspot.schema(body.object_type)
    record = rt.hubspot.read(body.object_type, body.record_id, [change.property for change in proposal.changes])
    proposal.changes = [with_old_value(schema, change, record) for change in proposal.changes]
    print(rt.policy.explain(proposal, schema, rt.clock()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hsgate", description="The human gate between AI agents and HubSpot.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="web, worker and (without REDIS_URL) an embedded Redis, for local use")
    commands.add_parser("web", help="the web process: Slack and the agents' API")
    worker = commands.add_parser("worker", help="a worker process")
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    policy = commands.add_parser("policy", help="check a policy file, or explain how a proposal is judged")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser("check", help="validate a policy file against HubSpot's schema")
    check.add_argument("file", nargs="?", type=Path, help="default: HSGATE_POLICY, else the shipped default")
    explain = policy_commands.add_parser("explain", help="which rules fire for a proposal, and its tier")
    explain.add_argument("proposal", help="the proposal as the agents' API takes it, as JSON (- reads stdin)")
    explain.add_argument("--agent", default="cli", help="judge it as this agent's proposal, scope included")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "slack_sdk", "slack_bolt", "hubspot", "rq.worker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command in ("run", "web"):
        _exit_on_sigterm()
    try:
        settings = load_settings()
        if args.command == "policy":
            if args.policy_command == "check":
                return policy_check(settings, args.file)
            return policy_explain(settings, args.proposal, args.agent)
        if args.command == "run":
            run_all(settings)
        elif args.command == "web":
            serve_web(settings)
        else:
            work(settings, burst=args.burst)
    except (ConfigError, PolicyError, ProposalInvalid, HubSpotError) as error:
        print(f"hsgate: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:
        print(f"hsgate: the proposal is not valid: {error.errors()[0]['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
