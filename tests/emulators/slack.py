"""Loopback emulator of the Slack Web API that also plays Slack's side towards the app.

Real `slack_sdk.WebClient(base_url=emu.api_url)` clients talk to it; tests read back what the app
did (messages, ephemerals, views, calls) and drive the app with signed clicks, slash commands,
events and view submissions, built the way Slack builds them.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.emulators.loopback import LoopbackServer

BOT_TOKEN = "xoxb-test-token"
SIGNING_SECRET = "test-signing-secret"
TEAM_ID = "T0TEAM"
BOT_USER_ID = "U0HSGATE"

BOT_ID = "B0HSGATE01"
API_APP_ID = "A0HSGATE01"
TEAM_DOMAIN = "hsgate-test"
# The deprecated verification token Slack still puts in every payload; Bolt ignores it.
VERIFICATION_TOKEN = "legacy-verification-token"
MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
TRIGGER_LIFETIME_S = 3.0

SEED_USERS = (
    ("U0MARIA", "maria@example.com", "Maria Lopez"),
    ("U0SAM", "sam@example.com", "Sam Okafor"),
    ("U0ADMIN", "admin@example.com", "Ada Admin"),
    ("U0DEPUTY", "deputy@example.com", "Dee Deputy"),
    ("U0OTHER", "other@example.com", "Oscar Other"),
)
SEED_CHANNELS = {"C0FALLBACK": "hsgate-fallback", "C0SALESEU": "sales-eu", "C0DEALS": "deals", "C0BACKUP": "backup-approvers"}
# Keys that form-encoded callers send as JSON strings and JSON callers send as structures.
JSON_ARGS = ("blocks", "attachments", "view", "metadata")

Json = dict[str, Any]


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[Json]
    thread_ts: str | None
    user: str | None  # None: posted by the bot
    updates: int = 0  # how many chat.update calls hit it


@dataclass
class Ephemeral:
    channel: str
    user: str
    text: str
    blocks: list[Json]


@dataclass
class _User:
    id: str
    email: str | None
    real_name: str

    @property
    def name(self) -> str:
        """The handle Slack derives from the email's local part."""
        return self.email.split("@")[0] if self.email else self.id.lower()


@dataclass
class _ResponseTarget:
    """What a response_url refers to: the message clicked, or none for a slash command."""

    channel: str
    user: str
    message_ts: str | None


@dataclass
class _Failure:
    error: str
    retry_after: int


class SlackError(Exception):
    """A Web API method's `{"ok": false, "error": ...}` answer."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body: Json = {"ok": False, "error": error, **extra}


def required(args: Json, name: str) -> Any:
    """`args[name]`, or the answer Slack gives when a required argument is missing."""
    if name not in args:
        raise SlackError("invalid_arguments", response_metadata={"messages": [f"[ERROR] missing required field: {name}"]})
    return args[name]


# ---------------------------------------------------------------- block validation (Slack's rules)


def block_errors(blocks: list[Json], limit: int) -> list[str]:
    """Slack's `invalid_blocks` messages for `blocks`, each with its JSON pointer."""
    errors = [] if len(blocks) <= limit else [f"no more than {limit} items allowed [json-pointer:/blocks]"]
    for i, block in enumerate(blocks):
        errors += _errors_in_block(block, f"/blocks/{i}")
    return errors


def _errors_in_block(block: Json, at: str) -> list[str]:
    errors = _too_long(block.get("block_id"), 255, f"{at}/block_id")
    if block.get("type") == "section":
        errors += _too_long(block.get("text", {}).get("text"), 3000, f"{at}/text/text")
        if len(block.get("fields", [])) > 10:
            errors.append(f"no more than 10 items allowed [json-pointer:{at}/fields]")
        if "accessory" in block:
            errors += _errors_in_element(block["accessory"], f"{at}/accessory")
    if block.get("type") == "actions":
        elements = block.get("elements", [])
        if len(elements) > 25:
            errors.append(f"no more than 25 items allowed [json-pointer:{at}/elements]")
        for i, element in enumerate(elements):
            errors += _errors_in_element(element, f"{at}/elements/{i}")
    return errors


def _errors_in_element(element: Json, at: str) -> list[str]:
    errors = _too_long(element.get("action_id"), 255, f"{at}/action_id")
    if element.get("type") != "button":
        return errors
    text = element.get("text", {})
    if text.get("type") != "plain_text":
        errors.append(f"must be a plain_text text object [json-pointer:{at}/text/type]")
    errors += _too_long(text.get("text"), 75, f"{at}/text/text")
    errors += _too_long(element.get("value"), 2000, f"{at}/value")
    if element.get("style", "primary") not in ("primary", "danger"):
        errors.append(f"must be one of the provided values [json-pointer:{at}/style]")
    return errors


def _too_long(value: str | None, limit: int, at: str) -> list[str]:
    return [f"must be less than {limit + 1} characters [json-pointer:{at}]"] if value and len(value) > limit else []


def _buttons(blocks: list[Json]) -> Iterator[tuple[str, Json]]:
    """Every button in `blocks`, with the block_id it sits in."""
    for block in blocks:
        candidates = block.get("elements", []) if block.get("type") == "actions" else [block.get("accessory", {})]
        for element in candidates:
            if element.get("type") == "button":
                yield block["block_id"], element


# ---------------------------------------------------------------- the emulator


class SlackEmulator:
    """One Slack workspace with a bot, seeded users and public channels; see module docstring."""

    def __init__(self, bot_token: str = BOT_TOKEN, signing_secret: str = SIGNING_SECRET) -> None:
        self.bot_token = bot_token
        self.signing_secret = signing_secret
        self.url = ""
        self.api_url = ""
        self.app_url: str | None = None
        self._server: LoopbackServer | None = None
        # Request handlers run on the server thread while tests read state on theirs.
        self._lock = threading.RLock()
        self._methods: dict[str, Callable[[Json], Json]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "users.lookupByEmail": self._users_lookup_by_email,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
        }
        self.reset()

    # -------------------------------------------------------------- lifecycle and seed

    def start(self, port: int = 0) -> SlackEmulator:
        app = Starlette(
            routes=[
                Route("/api/{method}", self._web_api, methods=["GET", "POST"]),
                Route("/response/{token}", self._response_url, methods=["POST"]),
            ]
        )
        self._server = LoopbackServer(app, port).start()
        self.url = self._server.url
        self.api_url = f"{self.url}/api/"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def reset(self) -> None:
        """Back to the seed; `app_url` is configuration and survives."""
        with self._lock:
            self._users: dict[str, _User] = {}
            self._members: dict[str, set[str]] = {channel: set() for channel in SEED_CHANNELS}
            self._channel_messages: dict[str, list[Message]] = {}
            self._open_dms: set[str] = set()
            self._views: dict[str, Json] = {}
            self._triggers: dict[str, float] = {}
            self._response_targets: dict[str, _ResponseTarget] = {}
            self._failures: dict[str, list[_Failure]] = {}
            self._ids = itertools.count(1)
            self.ephemerals: list[Ephemeral] = []
            self.responses: list[Json] = []
            self.calls: list[tuple[str, Json]] = []
            self.views_published: dict[str, Json] = {}
            self.views_opened: list[Json] = []
            self.warnings: list[str] = []
            for user_id, email, real_name in SEED_USERS:
                self.add_user(user_id, email, real_name)
                for members in self._members.values():
                    members.add(user_id)

    def add_user(self, user_id: str, email: str | None, real_name: str) -> None:
        """A workspace member (not in any channel); `email` None hides it from users.lookupByEmail."""
        with self._lock:
            self._users[user_id] = _User(user_id, email, real_name)

    # -------------------------------------------------------------- what the app did

    def messages(self, channel: str) -> list[Message]:
        return [m for m in self._channel_messages.get(channel, []) if m.thread_ts is None]

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        return [m for m in self._channel_messages.get(channel, []) if m.thread_ts == thread_ts]

    def message(self, channel: str, ts: str) -> Message:
        for candidate in self._channel_messages.get(channel, []):
            if candidate.ts == ts:
                return candidate
        raise KeyError(f"no message {ts} in {channel}")

    def dm_channel(self, user_id: str) -> str:
        return "D" + user_id[1:]

    def calls_to(self, method: str) -> list[Json]:
        return [args for name, args in self.calls if name == method]

    def fail_next(self, method: str, error: str = "ratelimited", count: int = 1, retry_after: int = 1) -> None:
        """The next `count` calls of `method` fail: `ratelimited` as HTTP 429, others as ok=false."""
        with self._lock:
            self._failures.setdefault(method, []).extend(_Failure(error, retry_after) for _ in range(count))

    # -------------------------------------------------------------- HTTP: Web API

    async def _web_api(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        args = await _request_args(request)
        token = request.headers.get("authorization", "").removeprefix("Bearer ") or args.get("token", "")
        args.pop("token", None)
        with self._lock:
            self.calls.append((method, args))
            try:
                self._check_access(method, token)
                failure = self._take_failure(method)
                if failure is not None:
                    return _failure_response(failure)
                return JSONResponse({"ok": True, **self._methods[method](args)})
            except SlackError as error:
                return JSONResponse(error.body)

    def _check_access(self, method: str, token: str) -> None:
        if method not in self._methods:
            raise SlackError("unknown_method", req_method=method)
        if token != self.bot_token:
            raise SlackError("invalid_auth")

    def _take_failure(self, method: str) -> _Failure | None:
        queued = self._failures.get(method)
        return queued.pop(0) if queued else None

    # -------------------------------------------------------------- Web API methods

    def _auth_test(self, args: Json) -> Json:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "hsgate test",
            "user": "hsgate",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: Json) -> Json:
        channel = self._posting_channel(required(args, "channel"))
        text, blocks = self._message_content(args)
        if not text and not blocks:
            raise SlackError("no_text")
        message = Message(channel, self._next_ts(), text, blocks, args.get("thread_ts"), None)
        self._channel_messages.setdefault(channel, []).append(message)
        return {"channel": channel, "ts": message.ts, "message": _message_json(message)}

    def _chat_update(self, args: Json) -> Json:
        channel = self._existing_channel(required(args, "channel"))
        message = self._find_message(channel, required(args, "ts"))
        text, blocks = self._message_content(args)
        if "text" in args:
            message.text = text
        # Like Slack: blocks left out keep the old ones (buttons included); [] removes them.
        if "blocks" in args:
            message.blocks = blocks
        message.updates += 1
        return {"channel": channel, "ts": message.ts, "text": message.text, "message": _message_json(message)}

    def _chat_post_ephemeral(self, args: Json) -> Json:
        user = self._user(required(args, "user")).id
        channel = self._posting_channel(required(args, "channel"))
        if user not in self._members_of(channel):
            raise SlackError("user_not_in_channel")
        text, blocks = self._message_content(args)
        self.ephemerals.append(Ephemeral(channel, user, text, blocks))
        return {"message_ts": self._next_ts()}

    def _chat_get_permalink(self, args: Json) -> Json:
        channel = self._existing_channel(required(args, "channel"))
        message = self._find_message(channel, required(args, "message_ts"))
        permalink = f"https://{TEAM_DOMAIN}.slack.com/archives/{channel}/p{message.ts.replace('.', '')}"
        return {"channel": channel, "permalink": permalink}

    def _users_lookup_by_email(self, args: Json) -> Json:
        email = required(args, "email").lower()
        for user in self._users.values():
            if user.email is not None and user.email.lower() == email:
                return {"user": _user_json(user)}
        raise SlackError("users_not_found")

    def _users_info(self, args: Json) -> Json:
        return {"user": _user_json(self._user(required(args, "user")))}

    def _conversations_open(self, args: Json) -> Json:
        users = [u for u in args.get("users", "").split(",") if u]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:  # group DMs are outside what hsgate needs; say so rather than fake one
            raise SlackError("too_many_users")
        channel = self.dm_channel(self._user(users[0]).id)
        if channel in self._open_dms:
            return {"no_op": True, "already_open": True, "channel": {"id": channel}}
        self._open_dms.add(channel)
        return {"channel": {"id": channel}}

    def _views_open(self, args: Json) -> Json:
        self._redeem_trigger(args.get("trigger_id"))
        view = self._new_view(required(args, "view"))
        self.views_opened.append(view)
        return {"view": view}

    def _views_update(self, args: Json) -> Json:
        old = self._views.get(args.get("view_id", ""))
        if old is None:
            raise SlackError("not_found")
        if args.get("hash") not in (None, old["hash"]):
            raise SlackError("hash_conflict")
        view = self._new_view(required(args, "view"), view_id=old["id"])
        return {"view": view}

    def _views_publish(self, args: Json) -> Json:
        user = self._user(required(args, "user_id")).id
        view = self._new_view(required(args, "view"))
        self.views_published[user] = view
        return {"view": view}

    # -------------------------------------------------------------- helpers for the methods

    def _message_content(self, args: Json) -> tuple[str, list[Json]]:
        """Validated text and blocks; Slack gives blocks a block_id when the caller did not."""
        blocks = copy.deepcopy(args.get("blocks") or [])
        errors = block_errors(blocks, MESSAGE_BLOCK_LIMIT)
        if errors:
            raise SlackError("invalid_blocks", errors=errors)
        if blocks and not args.get("text"):
            self.warnings.append("missing_text_fallback")
        for block in blocks:
            block.setdefault("block_id", self._new_id("b"))
        return args.get("text") or "", blocks

    def _new_view(self, view: Json, view_id: str | None = None) -> Json:
        errors = block_errors(view.get("blocks", []), VIEW_BLOCK_LIMIT)
        if errors:
            raise SlackError("invalid_blocks", errors=errors)
        stored = {
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            **copy.deepcopy(view),
            "id": view_id or self._new_id("V0VIEW"),
            "team_id": TEAM_ID,
            "app_id": API_APP_ID,
            "bot_id": BOT_ID,
            "state": {"values": {}},
            "hash": self._new_id("hash."),
        }
        self._views[stored["id"]] = stored
        return stored

    def _redeem_trigger(self, trigger_id: str | None) -> None:
        if not trigger_id:
            raise SlackError("invalid_arguments")
        issued = self._triggers.pop(trigger_id, None)
        if issued is None:
            raise SlackError("invalid_trigger_id")
        if time.monotonic() - issued > TRIGGER_LIFETIME_S:
            raise SlackError("expired_trigger_id")

    def _posting_channel(self, channel: str) -> str:
        """chat.postMessage accepts a user id and posts into the bot's DM with that user."""
        if channel in self._users:
            self._open_dms.add(self.dm_channel(channel))
            return self.dm_channel(channel)
        return self._existing_channel(channel)

    def _existing_channel(self, channel: str) -> str:
        if channel in self._members or self._dm_user(channel) is not None:
            return channel
        raise SlackError("channel_not_found")

    def _dm_user(self, channel: str) -> str | None:
        user_id = "U" + channel[1:]
        return user_id if channel.startswith("D") and user_id in self._users else None

    def _members_of(self, channel: str) -> set[str]:
        dm_user = self._dm_user(channel)
        return {dm_user} if dm_user is not None else self._members[channel]

    def _find_message(self, channel: str, ts: str) -> Message:
        try:
            return self.message(channel, ts)
        except KeyError:
            raise SlackError("message_not_found") from None

    def _user(self, user_id: str) -> _User:
        if user_id not in self._users:
            raise SlackError("user_not_found")
        return self._users[user_id]

    def _next_ts(self) -> str:
        micros = 1_700_000_000_000_000 + 100 * next(self._ids)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    # -------------------------------------------------------------- HTTP: response_url

    async def _response_url(self, request: Request) -> JSONResponse:
        body: Json = await request.json()
        with self._lock:
            self.responses.append(body)
            target = self._response_targets.get(request.path_params["token"])
            if target is None:
                return JSONResponse({"ok": False, "error": "expired_url"}, status_code=404)
            try:
                self._apply_response(target, body)
            except SlackError as error:
                return JSONResponse(error.body, status_code=400)
        return JSONResponse({"ok": True})

    def _apply_response(self, target: _ResponseTarget, body: Json) -> None:
        text, blocks = self._message_content(body)
        if body.get("delete_original") or body.get("replace_original"):
            if target.message_ts is None:
                raise SlackError("message_not_found")
            original = self._find_message(target.channel, target.message_ts)
            if body.get("delete_original"):
                self._channel_messages[target.channel].remove(original)
            else:  # replacing swaps the whole message but keeps its ts
                original.text, original.blocks = text, blocks
        elif body.get("response_type") == "in_channel":
            message = Message(target.channel, self._next_ts(), text, blocks, body.get("thread_ts"), None)
            self._channel_messages.setdefault(target.channel, []).append(message)
        else:
            self.ephemerals.append(Ephemeral(target.channel, target.user, text, blocks))

    # -------------------------------------------------------------- playing Slack towards the app

    def click(self, user_id: str, channel: str, ts: str, action_id: str, value: str | None = None) -> httpx.Response:
        """A block_actions payload for a button that is live in the stored message right now."""
        with self._lock:
            message = self.message(channel, ts)
            block_id, button = self._live_button(message, action_id, value)
            payload = {
                "type": "block_actions",
                **self._actor(user_id),
                "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
                "trigger_id": self._new_trigger(),
                "channel": {"id": channel, "name": self._channel_name(channel)},
                "message": _message_json(message),
                "state": {"values": {}},
                "response_url": self._new_response_url(_ResponseTarget(channel, user_id, ts)),
                "actions": [_action_json(block_id, button)],
            }
        return self.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def click_home(self, user_id: str, action_id: str, value: str | None = None) -> httpx.Response:
        """A block_actions payload for a button in the user's published Home tab (no channel, no response_url)."""
        with self._lock:
            view = self.views_published.get(user_id)
            if view is None:
                raise AssertionError(f"no Home tab published for {user_id}")
            found = next(
                (
                    (block_id, button)
                    for block_id, button in _buttons(view["blocks"])
                    if button.get("action_id") == action_id and value in (None, button.get("value"))
                ),
                None,
            )
            if found is None:
                raise AssertionError(f"no live button {action_id!r} (value {value!r}) in {user_id}'s Home tab")
            payload = {
                "type": "block_actions",
                **self._actor(user_id),
                "container": {"type": "view", "view_id": view.get("id", "")},
                "trigger_id": self._new_trigger(),
                "view": view,
                "actions": [_action_json(*found)],
            }
        return self.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def command(self, user_id: str, text: str, command: str = "/hsgate", channel_id: str | None = None) -> httpx.Response:
        channel = channel_id or self.dm_channel(user_id)
        with self._lock:
            form = {
                "token": VERIFICATION_TOKEN,
                "team_id": TEAM_ID,
                "team_domain": TEAM_DOMAIN,
                "channel_id": channel,
                "channel_name": self._channel_name(channel),
                "user_id": user_id,
                "user_name": self._username(user_id),
                "command": command,
                "text": text,
                "api_app_id": API_APP_ID,
                "is_enterprise_install": "false",
                "response_url": self._new_response_url(_ResponseTarget(channel, user_id, None)),
                "trigger_id": self._new_trigger(),
            }
        return self.post_signed(urlencode(form), "application/x-www-form-urlencoded")

    def event(self, event: Json) -> httpx.Response:
        with self._lock:
            envelope = {
                "token": VERIFICATION_TOKEN,
                "team_id": TEAM_ID,
                "api_app_id": API_APP_ID,
                "event": event,
                "type": "event_callback",
                "event_id": self._new_id("Ev0EVENT"),
                "event_time": int(time.time()),
                "authorizations": [
                    {
                        "enterprise_id": None,
                        "team_id": TEAM_ID,
                        "user_id": BOT_USER_ID,
                        "is_bot": True,
                        "is_enterprise_install": False,
                    }
                ],
                "is_ext_shared_channel": False,
            }
        return self.post_signed(json.dumps(envelope), "application/json")

    def open_home(self, user_id: str) -> httpx.Response:
        event: Json = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": self.dm_channel(user_id),
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        }
        if user_id in self.views_published:  # Slack sends the current Home view only once one exists
            event["view"] = self.views_published[user_id]
        return self.event(event)

    def submit_view(self, user_id: str, view_id: str, values: Json) -> httpx.Response:
        with self._lock:
            if view_id not in self._views:
                raise AssertionError(f"no view {view_id} was opened")
            payload = {
                "type": "view_submission",
                **self._actor(user_id),
                "trigger_id": self._new_trigger(),
                "view": {**self._views[view_id], "state": {"values": values}},
                "response_urls": [],
                "is_enterprise_install": False,
                "enterprise": None,
            }
        return self.post_signed(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    def post_signed(
        self, body: str, content_type: str, timestamp: int | None = None, secret: str | None = None
    ) -> httpx.Response:
        """POST `body` to `app_url` signed as Slack signs; override timestamp/secret to forge or replay."""
        if self.app_url is None:
            raise AssertionError("set emulator.app_url to the app's /slack/events URL first")
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        base = f"v0:{stamp}:{body}".encode()
        signature = "v0=" + hmac.new((secret or self.signing_secret).encode(), base, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        }
        return httpx.post(self.app_url, content=body.encode(), headers=headers, timeout=10)

    # -------------------------------------------------------------- payload pieces

    def _live_button(self, message: Message, action_id: str, value: str | None) -> tuple[str, Json]:
        for block_id, button in _buttons(message.blocks):
            if button.get("action_id") == action_id and value in (None, button.get("value")):
                return block_id, button
        raise AssertionError(f"no live button {action_id!r} (value {value!r}) in message {message.channel}/{message.ts}")

    def _actor(self, user_id: str) -> Json:
        """The user/team/app fields every interactive payload carries."""
        username = self._username(user_id)
        return {
            "user": {"id": user_id, "username": username, "name": username, "team_id": TEAM_ID},
            "api_app_id": API_APP_ID,
            "token": VERIFICATION_TOKEN,
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        }

    def _username(self, user_id: str) -> str:
        return self._users[user_id].name if user_id in self._users else user_id.lower()

    def _channel_name(self, channel: str) -> str:
        return SEED_CHANNELS.get(channel, "directmessage")

    def _new_trigger(self) -> str:
        trigger_id = self._new_id("1700000000.trigger.")
        self._triggers[trigger_id] = time.monotonic()
        return trigger_id

    def _new_response_url(self, target: _ResponseTarget) -> str:
        token = self._new_id("hook")
        self._response_targets[token] = target
        return f"{self.url}/response/{token}"


# ---------------------------------------------------------------- wire formats


async def _request_args(request: Request) -> Json:
    """Arguments from the query string and a JSON or form body, as slack_sdk sends them."""
    args: Json = dict(request.query_params)
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        args.update(json.loads(body))
    else:  # parsed by hand: Starlette's form parser needs python-multipart, which is not installed
        args.update(parse_qsl(body.decode()))
    for key in JSON_ARGS:
        if isinstance(args.get(key), str):
            args[key] = json.loads(args[key])
    return args


def _message_json(message: Message) -> Json:
    body: Json = {"type": "message", "text": message.text, "ts": message.ts, "team": TEAM_ID}
    if message.user is None:
        body.update({"user": BOT_USER_ID, "bot_id": BOT_ID, "app_id": API_APP_ID})
    else:
        body["user"] = message.user
    if message.blocks:
        body["blocks"] = message.blocks
    if message.thread_ts is not None:
        body["thread_ts"] = message.thread_ts
    return body


def _failure_response(failure: _Failure) -> JSONResponse:
    body = {"ok": False, "error": failure.error}
    if failure.error == "ratelimited":
        return JSONResponse(body, status_code=429, headers={"Retry-After": str(failure.retry_after)})
    return JSONResponse(body)


def _user_json(user: _User) -> Json:
    profile: Json = {
        "real_name": user.real_name,
        "real_name_normalized": user.real_name,
        "display_name": user.real_name.split()[0],
        "display_name_normalized": user.real_name.split()[0],
        "avatar_hash": "g0000000000",
        "title": "",
        "phone": "",
        "skype": "",
        "status_text": "",
        "status_emoji": "",
        "fields": None,
        "team": TEAM_ID,
    }
    if user.email is not None:
        profile["email"] = user.email
    return {
        "id": user.id,
        "team_id": TEAM_ID,
        "name": user.name,
        "real_name": user.real_name,
        "profile": profile,
        "deleted": False,
        "is_bot": False,
        "is_app_user": False,
        "updated": 1700000000,
        "tz": "Europe/Berlin",
    }


def _action_json(block_id: str, button: Json) -> Json:
    action: Json = {
        "action_id": button["action_id"],
        "block_id": block_id,
        "text": button["text"],
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    for optional in ("value", "style"):
        if optional in button:
            action[optional] = button[optional]
    return action
