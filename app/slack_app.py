"""The slack-bolt app: listeners ack at once and hand the decision to plain functions."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from app.cards import APPROVE_ACTION, REJECT_ACTION, UNDO_ACTION
from app.commands import run_command
from app.decisions import decide, request_undo
from app.runtime import Runtime


def build_bolt_app(rt: Runtime) -> App:
    settings = rt.settings
    app = App(
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        client=rt.messenger.client,
        token_verification_enabled=False,
    )

    def on_decision(ack: Ack, body: dict[str, Any], action: dict[str, Any], approve: bool) -> None:
        user = body["user"]["id"]
        reply = decide(rt, action["value"], user, approve)
        ack()
        if reply:
            rt.messenger.ephemeral(body["response_url"], reply)

    @app.action(APPROVE_ACTION)
    def approve(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        on_decision(ack, body, action, approve=True)

    @app.action(REJECT_ACTION)
    def reject(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        on_decision(ack, body, action, approve=False)

    @app.action(UNDO_ACTION)
    def undo(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        reply = request_undo(rt, action["value"], body["user"]["id"])
        ack()
        rt.messenger.ephemeral(body["response_url"], reply)

    @app.command("/hsgate")
    def command(ack: Ack, command: dict[str, Any]) -> None:
        ack(text=run_command(rt, command["user_id"], command.get("text", "")), response_type="ephemeral")

    return app
