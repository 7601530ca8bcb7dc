"""The agents' API under /api/v1: propose a change, read back its outcome."""

from __future__ import annotations

import hmac
import json
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import intake
from app.hubspot import HubSpotError
from app.models import OBJECT_TYPES, ProposalIn
from app.runtime import Runtime
from app.validation import Problem, ProposalInvalid

MAX_BODY_BYTES = 256 * 1024


def error(status: int, code: str, message: str, problems: list[Problem] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if problems:
        body["errors"] = [problem.as_json() for problem in problems]
    return JSONResponse(body, status_code=status)


def agent_for(rt: Runtime, request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    for known, agent in rt.settings.hsgate_agent_tokens.items():
        if hmac.compare_digest(known.encode(), token.strip().encode()):
            return agent
    return None


def _unauthorized() -> JSONResponse:
    return error(401, "unauthorized", "Send `Authorization: Bearer <agent token>` with a token from HSGATE_AGENT_TOKENS.")


def routes(rt: Runtime) -> list[Route]:
    async def create_proposal(request: Request) -> JSONResponse:
        agent = agent_for(rt, request)
        if agent is None:
            return _unauthorized()
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return error(413, "too_large", f"The body is over {MAX_BODY_BYTES} bytes.")
        try:
            body = ProposalIn.model_validate(json.loads(raw))
        except ValueError as exc:
            problems = _body_problems(exc)
            return error(
                422, "invalid_proposal", "The proposal was not accepted: " + " ".join(p.message for p in problems), problems
            )
        try:
            proposal, created = await run_in_threadpool(intake.submit, rt, agent, body)
        except ProposalInvalid as exc:
            return error(
                422,
                "invalid_proposal",
                "The proposal was not accepted: " + " ".join(p.message for p in exc.problems),
                exc.problems,
            )
        except HubSpotError as exc:
            return error(
                503,
                "hubspot_unavailable",
                f"HubSpot's schema could not be read ({exc.status or 'no answer'}); try again shortly.",
            )
        return JSONResponse(proposal.public_view(), status_code=202 if created else 200)

    async def get_proposal(request: Request) -> JSONResponse:
        agent = agent_for(rt, request)
        if agent is None:
            return _unauthorized()
        proposal = await run_in_threadpool(rt.store.get, request.path_params["proposal_id"])
        if proposal is None or proposal.agent != agent:
            return error(404, "not_found", f"No proposal {request.path_params['proposal_id']!r} from agent {agent!r}.")
        return JSONResponse(proposal.public_view())

    return [
        Route("/api/v1/proposals", create_proposal, methods=["POST"]),
        Route("/api/v1/proposals/{proposal_id}", get_proposal, methods=["GET"]),
    ]


def _body_problems(exc: ValueError) -> list[Problem]:
    """Pydantic's complaints (or a JSON syntax error) as problems naming the field and what it takes."""
    if not isinstance(exc, ValidationError):
        return [Problem("body", f"The body is not valid JSON: {exc}.")]
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        allowed: list[str] = []
        if where == "object_type":
            allowed = list(OBJECT_TYPES)
            message = f"object_type must be one of {', '.join(OBJECT_TYPES)}"
        elif err["type"] == "extra_forbidden":
            message = f"unknown field {where!r}; send action, object_type, record_id, changes|note|task, reason, idempotency_key"
        elif err["type"] == "string_pattern_mismatch" and where == "record_id":
            message = 'record_id must be the HubSpot record id, digits only, e.g. "1001"'
        problems.append(Problem(where, f"{where}: {message}.", allowed))
    return problems
