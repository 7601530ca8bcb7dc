"""Settings, read once from the environment and a `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line that names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr
    slack_signing_secret: SecretStr
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    hubspot_access_token: SecretStr
    hubspot_api_url: str = "https://api.hubapi.com"
    hubspot_portal_id: str | None = None
    hubspot_ui_domain: str = "app.hubspot.com"
    hubspot_rate_limit: Annotated[int, Field(gt=0)] = 90
    redis_url: str | None = None
    hsgate_data_dir: Path = Path(".hsgate")
    hsgate_agent_tokens: Annotated[dict[str, str], NoDecode] = Field(min_length=1)
    hsgate_fallback_channel: str | None = None
    hsgate_policy: Path | None = None
    hsgate_admins: Annotated[list[str], NoDecode] = []
    port: Annotated[int, Field(gt=0, lt=65536)] = 3000

    @field_validator("hsgate_agent_tokens", mode="before")
    @classmethod
    def _parse_agent_tokens(cls, raw: object) -> object:
        """`name=token,name2=token2` becomes {token: name}: requests are looked up by token."""
        if not isinstance(raw, str):
            return raw
        tokens: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in raw.split(","))):
            name, sep, token = pair.partition("=")
            if not sep or not name.strip() or not token.strip():
                raise ValueError("expected comma-separated name=token pairs")
            if token.strip() in tokens:
                raise ValueError(f"the token of agent {name.strip()!r} is used twice")
            tokens[token.strip()] = name.strip()
        return tokens

    @field_validator("hsgate_admins", mode="before")
    @classmethod
    def _parse_admins(cls, raw: object) -> object:
        if isinstance(raw, str):
            return [user for user in (u.strip() for u in raw.split(",")) if user]
        return raw

    @field_validator("slack_api_url")
    @classmethod
    def _slash_terminated(cls, url: str) -> str:
        return url if url.endswith("/") else url + "/"

    @field_validator("hubspot_api_url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's report into one line that names the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        if first["type"] == "missing":
            raise ConfigError(f"{name} is not set") from None
        reason = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{name} is malformed: {reason}") from None
