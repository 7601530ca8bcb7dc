"""The slack-bolt app: listeners ack at once and hand the decision to plain functions."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from slack_bolt import Ack, App

from app import decisions, home
from app.cards import APPROVE_ACTION, EDIT_ACTION, REJECT_ACTION, UNDO_ACTION, text_only
from app.commands import run_command
from app.models import Proposal
from app.runtime import Runtime
from app.validation import ProposalInvalid, normalize_changes
from app.views import (
    EDIT_CALLBACK,
    REJECT_CALLBACK,
    edit_block_id,
    edit_view,
    read_edit_view,
    read_reject_view,
    reject_view,
)


def build_bolt_app(rt: Runtime, listener_executor: Executor | None = None) -> App:
    """`listener_executor` runs what listeners do after `ack()` (Bolt's own pool by default)."""
    app = App(
        signing_secret=rt.settings.slack_signing_secret.get_secret_value(),
        client=rt.messenger.client,
        token_verification_enabled=False,
        listener_executor=listener_executor,
    )

    def tell(body: dict[str, Any], text: str | None) -> None:
        """Answer the person who acted: ephemerally in the channel, or in their DM from the Home tab."""
        if not text:
            return
        if body.get("response_url"):
            rt.messenger.ephemeral(body["response_url"], text)
        else:
            rt.messenger.post(rt.messenger.dm_channel(body["user"]["id"]), text_only(text))

    def after_decision(body: dict[str, Any], reply: str | None) -> None:
        tell(body, reply)
        if body.get("view", {}).get("type") == "home":
            home.publish(rt, body["user"]["id"])

    @app.action(APPROVE_ACTION)
    def approve(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        reply = decisions.approve(rt, action["value"], body["user"]["id"])
        ack()
        after_decision(body, reply)

    def open_dialog(ack: Ack, body: dict[str, Any], action: dict[str, Any], build: Callable[[Proposal], dict[str, Any]]) -> None:
        """Open a decision dialog for someone who may decide now; tell anyone else why not."""
        proposal = decisions.decidable(rt, action["value"], body["user"]["id"])
        ack()
        if isinstance(proposal, str):
            tell(body, proposal)
            return
        rt.messenger.open_view(body["trigger_id"], build(proposal))

    @app.action(EDIT_ACTION)
    def edit(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        open_dialog(
            ack, body, action, lambda proposal: edit_view(proposal, rt.hubspot.schema(proposal.object_type, allow_stale=True))
        )

    @app.action(REJECT_ACTION)
    def reject(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        open_dialog(ack, body, action, reject_view)

    @app.view(EDIT_CALLBACK)
    def edited(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        proposal = rt.store.require(view["private_metadata"])
        values = read_edit_view(view["state"])
        try:
            normalized = normalize_changes(rt.hubspot.schema(proposal.object_type, allow_stale=True), values)
        except ProposalInvalid as error:
            ack(
                response_action="errors",
                errors={edit_block_id(p.field.removeprefix("changes.")): p.message[:150] for p in error.problems},
            )
            return
        reply = decisions.approve(rt, proposal.id, body["user"]["id"], edited=normalized)
        ack()
        tell(body, reply)

    @app.view(REJECT_CALLBACK)
    def rejected(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        reply = decisions.reject(rt, view["private_metadata"], body["user"]["id"], read_reject_view(view["state"]))
        ack()
        tell(body, reply)

    @app.action(UNDO_ACTION)
    def undo(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        reply = decisions.request_undo(rt, action["value"], body["user"]["id"])
        ack()
        tell(body, reply)

    @app.command("/hsgate")
    def command(ack: Ack, command: dict[str, Any]) -> None:
        ack(text=run_command(rt, command["user_id"], command.get("text", "")), response_type="ephemeral")

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any]) -> None:
        if event.get("tab") == "home":
            home.publish(rt, event["user"])

    return app
