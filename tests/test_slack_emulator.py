"""The Slack emulator behaves like Slack towards the real slack_sdk client and signs like Slack."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web import SlackResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.emulators.loopback import LoopbackServer
from tests.emulators.slack import BOT_TOKEN, SIGNING_SECRET, SlackEmulator

SPEC = json.loads((Path(__file__).parent / "emulators/slack_spec/slack_web_openapi_v2_without_examples.json").read_text())
MODAL = {"type": "modal", "callback_id": "why", "title": {"type": "plain_text", "text": "Why?"}, "blocks": []}
BUTTONS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Close deal 42?"}},
    {
        "type": "actions",
        "block_id": "decide",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "value": "p1",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
            },
            {
                "type": "button",
                "action_id": "reject",
                "value": "p1",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject"},
            },
        ],
    },
]


class Echo:
    """Stands in for the hsgate app: records what Slack (the emulator) POSTs to it."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server = LoopbackServer(Starlette(routes=[Route("/slack/events", self._record, methods=["POST"])]))

    async def _record(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        return Response()

    def last_payload(self) -> dict[str, Any]:
        form = parse_qs(self.requests[-1][1].decode())
        return json.loads(form["payload"][0]) if "payload" in form else {k: v[0] for k, v in form.items()}


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[SlackEmulator, Echo]]:
    emu, echo = SlackEmulator().start(), Echo()
    echo.server.start()
    emu.app_url = f"{echo.server.url}/slack/events"
    yield emu, echo
    echo.server.stop()
    emu.stop()


@pytest.fixture
def emu(running: tuple[SlackEmulator, Echo]) -> SlackEmulator:
    running[0].reset()
    running[1].requests.clear()
    return running[0]


@pytest.fixture
def echo(running: tuple[SlackEmulator, Echo], emu: SlackEmulator) -> Echo:
    return running[1]


@pytest.fixture
def client(emu: SlackEmulator) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=emu.api_url)


def error_of(call: Callable[[], object]) -> SlackResponse:
    with pytest.raises(SlackApiError) as raised:
        call()
    return raised.value.response


def card(client: WebClient) -> tuple[str, str]:
    posted = client.chat_postMessage(channel="U0MARIA", text="Close deal 42?", blocks=BUTTONS)
    return posted["channel"], posted["ts"]


def test_post_message_to_user_id_lands_in_the_bots_dm(emu: SlackEmulator, client: WebClient) -> None:
    channel, ts = card(client)
    assert channel == "D0MARIA" == emu.dm_channel("U0MARIA")
    assert [(m.ts, m.text, m.user) for m in emu.messages("D0MARIA")] == [(ts, "Close deal 42?", None)]


def test_thread_reply_is_kept_out_of_the_channel_list(emu: SlackEmulator, client: WebClient) -> None:
    channel, ts = card(client)
    reply = client.chat_postMessage(channel=channel, thread_ts=ts, text="decided")
    assert [m.ts for m in emu.replies(channel, ts)] == [reply["ts"]]
    assert [m.ts for m in emu.messages(channel)] == [ts]


def test_update_addressed_by_user_id_is_channel_not_found(client: WebClient) -> None:
    _, ts = card(client)
    assert error_of(lambda: client.chat_update(channel="U0MARIA", ts=ts, text="x"))["error"] == "channel_not_found"


def test_update_of_unknown_ts_is_message_not_found(client: WebClient) -> None:
    channel, _ = card(client)
    assert error_of(lambda: client.chat_update(channel=channel, ts="1.000001", text="x"))["error"] == "message_not_found"


def test_update_without_blocks_keeps_the_buttons(emu: SlackEmulator, client: WebClient) -> None:
    channel, ts = card(client)
    client.chat_update(channel=channel, ts=ts, text="Approved")
    message = emu.message(channel, ts)
    assert (message.text, message.blocks[1]["elements"][0]["action_id"], message.updates) == ("Approved", "approve", 1)


def test_update_with_empty_blocks_removes_them(emu: SlackEmulator, client: WebClient) -> None:
    channel, ts = card(client)
    client.chat_update(channel=channel, ts=ts, text="Approved", blocks=[])
    assert emu.message(channel, ts).blocks == []


def test_post_ephemeral_is_recorded_for_the_user(emu: SlackEmulator, client: WebClient) -> None:
    answer = client.chat_postEphemeral(channel="C0DEALS", user="U0SAM", text="only you")
    assert answer["message_ts"]
    assert [(e.channel, e.user, e.text) for e in emu.ephemerals] == [("C0DEALS", "U0SAM", "only you")]


def test_post_ephemeral_to_unknown_user_is_user_not_found(client: WebClient) -> None:
    assert error_of(lambda: client.chat_postEphemeral(channel="C0DEALS", user="U0NOBODY", text="x"))["error"] == "user_not_found"


def test_lookup_by_email_finds_the_seeded_user(client: WebClient) -> None:
    user = client.users_lookupByEmail(email="maria@example.com")["user"]
    assert (user["id"], user["real_name"], user["profile"]["email"]) == ("U0MARIA", "Maria Lopez", "maria@example.com")


def test_lookup_by_email_without_slack_account_is_users_not_found(client: WebClient) -> None:
    assert error_of(lambda: client.users_lookupByEmail(email="nora@example.com"))["error"] == "users_not_found"


def test_unknown_token_is_invalid_auth(emu: SlackEmulator) -> None:
    assert error_of(WebClient(token="xoxb-wrong", base_url=emu.api_url).auth_test)["error"] == "invalid_auth"


def button(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [{"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "Go"}, **overrides}],
    }


@pytest.mark.parametrize(
    ("blocks", "error"),
    [
        ([{"type": "divider"}] * 51, "no more than 50 items allowed [json-pointer:/blocks]"),
        (
            [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
        ),
        (
            [button(text={"type": "plain_text", "text": "x" * 76})],
            "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]",
        ),
        (
            [button(text={"type": "mrkdwn", "text": "Go"})],
            "must be a plain_text text object [json-pointer:/blocks/0/elements/0/text/type]",
        ),
        ([button(action_id="a" * 256)], "must be less than 256 characters [json-pointer:/blocks/0/elements/0/action_id]"),
        ([{**button(), "block_id": "b" * 256}], "must be less than 256 characters [json-pointer:/blocks/0/block_id]"),
        ([button(value="v" * 2001)], "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]"),
        ([button(style="warning")], "must be one of the provided values [json-pointer:/blocks/0/elements/0/style]"),
        (
            [{"type": "actions", "elements": button()["elements"] * 26}],
            "no more than 25 items allowed [json-pointer:/blocks/0/elements]",
        ),
    ],
)
def test_blocks_breaking_slack_limits_are_invalid_blocks(client: WebClient, blocks: list[dict[str, Any]], error: str) -> None:
    answer = error_of(lambda: client.chat_postMessage(channel="C0DEALS", text="x", blocks=blocks))
    assert (answer["error"], answer["errors"]) == ("invalid_blocks", [error])


def test_blocks_without_text_fallback_are_posted_with_a_warning(emu: SlackEmulator, client: WebClient) -> None:
    with pytest.warns(UserWarning, match="top-level `text` argument is missing"):
        client.chat_postMessage(channel="C0DEALS", blocks=BUTTONS)
    assert emu.warnings == ["missing_text_fallback"]


def test_fail_next_ratelimited_answers_429_with_retry_after(emu: SlackEmulator, client: WebClient) -> None:
    emu.fail_next("chat.postMessage", retry_after=7)
    answer = error_of(lambda: client.chat_postMessage(channel="C0DEALS", text="x"))
    assert (answer.status_code, answer.headers["Retry-After"], answer["error"]) == (429, "7", "ratelimited")
    assert client.chat_postMessage(channel="C0DEALS", text="x")["ok"] is True


def test_fail_next_other_error_answers_ok_false(emu: SlackEmulator, client: WebClient) -> None:
    emu.fail_next("users.lookupByEmail", "fatal_error")
    answer = error_of(lambda: client.users_lookupByEmail(email="sam@example.com"))
    assert (answer.status_code, answer["error"]) == (200, "fatal_error")


def test_response_url_replace_original_swaps_the_message_in_place(emu: SlackEmulator, client: WebClient, echo: Echo) -> None:
    channel, ts = card(client)
    emu.click("U0MARIA", channel, ts, "approve")
    httpx.post(echo.last_payload()["response_url"], json={"replace_original": True, "text": "Approved by Maria"})
    assert [(m.ts, m.text, m.blocks) for m in emu.messages(channel)] == [(ts, "Approved by Maria", [])]


def test_click_refuses_a_button_that_is_not_in_the_message(emu: SlackEmulator, client: WebClient) -> None:
    channel, ts = card(client)
    client.chat_update(channel=channel, ts=ts, text="Approved", blocks=[])
    with pytest.raises(AssertionError, match="no live button 'approve'"):
        emu.click("U0MARIA", channel, ts, "approve")


def test_click_sends_a_block_actions_payload_for_the_stored_button(emu: SlackEmulator, client: WebClient, echo: Echo) -> None:
    channel, ts = card(client)
    emu.click("U0MARIA", channel, ts, "reject", value="p1")
    payload = echo.last_payload()
    seen = (payload["type"], payload["user"]["id"], payload["container"]["message_ts"], payload["message"]["ts"])
    assert seen == ("block_actions", "U0MARIA", ts, ts)
    assert payload["actions"][0] | {"action_ts": "-"} == {
        "action_id": "reject", "block_id": "decide", "value": "p1", "style": "danger", "type": "button",
        "text": {"type": "plain_text", "text": "Reject"}, "action_ts": "-",
    }  # fmt: skip


def test_click_is_signed_as_slack_signs(emu: SlackEmulator, client: WebClient, echo: Echo) -> None:
    channel, ts = card(client)
    emu.click("U0MARIA", channel, ts, "approve")
    headers, body = echo.requests[-1]
    assert SignatureVerifier(SIGNING_SECRET).is_valid_request(body, headers) is True


def test_views_open_needs_a_fresh_trigger_and_submit_view_returns_its_state(
    emu: SlackEmulator, client: WebClient, echo: Echo
) -> None:
    emu.command("U0MARIA", "reject p1")
    trigger = echo.last_payload()["trigger_id"]
    view = client.views_open(trigger_id=trigger, view=MODAL)["view"]
    assert error_of(lambda: client.views_open(trigger_id=trigger, view=view))["error"] == "invalid_trigger_id"
    emu.submit_view("U0MARIA", view["id"], {"reason": {"text": {"type": "plain_text_input", "value": "stale"}}})
    submitted = echo.last_payload()
    state = submitted["view"]["state"]["values"]
    assert (submitted["type"], submitted["view"]["callback_id"], state["reason"]["text"]["value"]) == (
        "view_submission",
        "why",
        "stale",
    )


def missing_required(schema: dict[str, Any], value: Any, at: str = "") -> list[str]:
    """Paths of properties the spec marks required but `value` lacks."""
    if "$ref" in schema:
        return missing_required(SPEC["definitions"][schema["$ref"].rsplit("/", 1)[1]], value, at)
    if isinstance(schema.get("items"), list):  # this spec writes "one of these shapes" as a list of items
        return min((missing_required(option, value, at) for option in schema["items"]), key=len)
    if isinstance(value, dict):
        missing = [f"{at}/{name}" for name in schema.get("required", []) if name not in value]
        nested = [
            missing_required(sub, value[name], f"{at}/{name}")
            for name, sub in schema.get("properties", {}).items()
            if name in value
        ]
        return missing + [path for paths in nested for path in paths]
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [path for i, item in enumerate(value) for path in missing_required(schema["items"], item, f"{at}/{i}")]
    return []


SUCCESSFUL_CALLS: dict[str, Callable[[WebClient, str], SlackResponse]] = {
    "auth.test": lambda c, _: c.auth_test(),
    "chat.postMessage": lambda c, _: c.chat_postMessage(channel="U0MARIA", text="hi", blocks=BUTTONS),
    "chat.update": lambda c, _: c.chat_update(channel="D0MARIA", ts=card(c)[1], text="done", blocks=[]),
    "chat.postEphemeral": lambda c, _: c.chat_postEphemeral(channel="C0DEALS", user="U0SAM", text="psst"),
    "chat.getPermalink": lambda c, _: c.chat_getPermalink(channel="D0MARIA", message_ts=card(c)[1]),
    "users.lookupByEmail": lambda c, _: c.users_lookupByEmail(email="sam@example.com"),
    "users.info": lambda c, _: c.users_info(user="U0SAM"),
    "conversations.open": lambda c, _: c.conversations_open(users="U0SAM"),
    "views.open": lambda c, trigger: c.views_open(trigger_id=trigger, view=MODAL),
    "views.update": lambda c, trigger: c.views_update(
        view_id=c.views_open(trigger_id=trigger, view=MODAL)["view"]["id"], view=MODAL
    ),
    "views.publish": lambda c, _: c.views_publish(user_id="U0SAM", view={"type": "home", "blocks": []}),
}


@pytest.mark.parametrize("method", sorted(SUCCESSFUL_CALLS))
def test_success_answers_carry_every_property_the_spec_requires(
    emu: SlackEmulator, client: WebClient, echo: Echo, method: str
) -> None:
    emu.command("U0SAM", "")
    answer = SUCCESSFUL_CALLS[method](client, echo.last_payload()["trigger_id"])
    operation = next(iter(SPEC["paths"][f"/{method}"].values()))
    assert (answer["ok"], missing_required(operation["responses"]["200"]["schema"], answer.data)) == (True, [])
