"""The one place hsgate posts to Slack.

The WebClient retries Slack's 429s after their Retry-After, and 5xx and connection errors, so a
burst of cards is paced by Slack's own answers. User lookups and DM channel ids are cached in
Redis, shared by every process.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from app.cards import Card

log = logging.getLogger(__name__)

USER_CACHE_TTL_S = 3600
GONE = {"message_not_found", "channel_not_found", "is_archived", "cant_update_message"}
MISSING_USER_TTL_S = 300
_NO_USER = "-"


def build_web_client(token: str, base_url: str) -> WebClient:
    client = WebClient(token=token, base_url=base_url, timeout=15)
    client.retry_handlers.extend(
        [
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ]
    )
    return client


class SlackMessenger:
    def __init__(self, client: WebClient, redis: Redis) -> None:
        self.client = client
        self._redis = redis

    def post(self, channel: str, card: Card, thread_ts: str | None = None) -> tuple[str, str]:
        """Post a message; returns the channel id Slack filed it under (D... for a DM) and its ts."""
        answer = self.client.chat_postMessage(
            channel=channel, text=card.text, blocks=card.blocks, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False
        )
        return str(answer["channel"]), str(answer["ts"])

    def update(self, channel: str, ts: str, card: Card) -> bool:
        """Replace a message; False when it is gone (deleted in Slack, or its channel archived)."""
        try:
            # An empty block list removes the buttons; leaving blocks out would keep the old ones.
            self.client.chat_update(channel=channel, ts=ts, text=card.text, blocks=card.blocks)
        except SlackApiError as error:
            if error.response.get("error") not in GONE:
                raise
            log.warning("message %s in %s is gone (%s); not updated", ts, channel, error.response.get("error"))
            return False
        return True

    def ephemeral(self, response_url: str, text: str) -> None:
        """Answer only the person who clicked, through the click's response_url (works in any channel)."""
        WebhookClient(response_url, timeout=15).send(text=text, response_type="ephemeral", replace_original=False)

    def dm_channel(self, user: str) -> str:
        key = f"hsgate:cache:slack:dm:{user}"
        cached = self._redis.get(key)
        if cached is not None:
            return cached.decode() if isinstance(cached, bytes) else str(cached)
        answer = self.client.conversations_open(users=user)
        channel = str(answer["channel"]["id"])
        self._redis.set(key, channel, ex=USER_CACHE_TTL_S)
        return channel

    def user_for_email(self, email: str) -> str | None:
        """The Slack user id with this email, or None when there is none."""
        key = f"hsgate:cache:slack:email:{email.lower()}"
        cached = self._redis.get(key)
        if cached is not None:
            user = cached.decode() if isinstance(cached, bytes) else str(cached)
            return None if user == _NO_USER else user
        try:
            answer = self.client.users_lookupByEmail(email=email)
        except SlackApiError as error:
            if error.response.get("error") != "users_not_found":
                raise
            self._redis.set(key, _NO_USER, ex=MISSING_USER_TTL_S)
            return None
        user = str(answer["user"]["id"])
        self._redis.set(key, user, ex=USER_CACHE_TTL_S)
        return user

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        self.client.views_open(trigger_id=trigger_id, view=view)

    def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message, or None when Slack will not give one (the link is a convenience)."""
        try:
            return str(self.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
        except SlackApiError:
            return None

    def publish_home(self, user: str, view: dict[str, Any]) -> None:
        self.client.views_publish(user_id=user, view=view)
