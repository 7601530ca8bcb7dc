"""The web process's ASGI app: Slack's requests, the agents' API and a health check."""

from __future__ import annotations

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import api
from app.runtime import Runtime


def build_web_app(rt: Runtime, bolt: App) -> Starlette:
    async def slack_events(request: Request) -> Response:
        body = await request.body()
        # Bolt's dispatch blocks (Redis, and the listener up to its ack): keep it off the event loop.
        answer = await run_in_threadpool(bolt.dispatch, to_bolt_request(request, body))
        return to_starlette_response(answer)

    async def healthz(request: Request) -> JSONResponse:
        try:
            await run_in_threadpool(rt.redis.ping)
        except Exception as error:  # any Redis failure means not ready
            return JSONResponse({"ok": False, "redis": type(error).__name__}, status_code=503)
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *api.routes(rt),
        ]
    )
