"""Settings: `load_settings` from the environment, and how the CLI reports a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.config import ConfigError, Settings, load_settings

REQUIRED = {
    "SLACK_BOT_TOKEN": "xoxb-secret-bot",
    "SLACK_SIGNING_SECRET": "secret-signing",
    "HUBSPOT_ACCESS_TOKEN": "pat-secret-hubspot",
    "HSGATE_AGENT_TOKENS": "crm-agent=secret-agent-token",
}
SECRETS = ("xoxb-secret-bot", "secret-signing", "pat-secret-hubspot", "secret-agent-token")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment holding every required setting, in a cwd with no `.env` file.

    Every setting's variable but REDIS_URL is cleared (CI may set that one; tests that need it
    unset delete it through monkeypatch, which puts it back afterwards).
    """
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        if name != "redis_url":
            monkeypatch.delenv(name.upper(), raising=False)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def config_error(**overrides: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, **overrides)
    message = str(caught.value)
    assert "\n" not in message
    for secret in SECRETS:
        assert secret not in message
    return message


def test_every_required_setting_given_loads_with_the_documented_defaults(env: pytest.MonkeyPatch) -> None:
    env.delenv("REDIS_URL", raising=False)
    settings = load_settings(_env_file=None)
    assert settings.slack_bot_token.get_secret_value() == "xoxb-secret-bot"
    assert settings.slack_signing_secret.get_secret_value() == "secret-signing"
    assert settings.hubspot_access_token.get_secret_value() == "pat-secret-hubspot"
    assert settings.hsgate_agent_tokens == {"secret-agent-token": "crm-agent"}
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.hubspot_api_url == "https://api.hubapi.com"
    assert settings.port == 3000
    assert settings.hsgate_data_dir == Path(".hsgate")
    assert settings.redis_url is None
    assert settings.hsgate_admins == []
    assert settings.slack_app_token is None


@pytest.mark.parametrize("name", list(REQUIRED))
def test_a_missing_required_setting_is_named(env: pytest.MonkeyPatch, name: str) -> None:
    env.delenv(name)
    assert config_error() == f"{name} is not set"


def test_agent_tokens_that_are_not_name_token_pairs_are_malformed(env: pytest.MonkeyPatch) -> None:
    env.setenv("HSGATE_AGENT_TOKENS", "nonsense")
    message = config_error()
    assert message.startswith("HSGATE_AGENT_TOKENS is malformed: ")
    assert "name=token" in message
    assert "nonsense" not in message


def test_a_token_given_to_two_agents_is_malformed(env: pytest.MonkeyPatch) -> None:
    env.setenv("HSGATE_AGENT_TOKENS", "a=secret-agent-token,b=secret-agent-token")
    message = config_error()
    assert message.startswith("HSGATE_AGENT_TOKENS is malformed: ")
    assert "used twice" in message


def test_a_port_that_is_not_a_number_is_malformed(env: pytest.MonkeyPatch) -> None:
    env.setenv("PORT", "abc")
    message = config_error()
    assert message.startswith("PORT is malformed: ")
    assert "integer" in message


def test_agent_tokens_parse_to_a_map_from_token_to_agent(env: pytest.MonkeyPatch) -> None:
    env.setenv("HSGATE_AGENT_TOKENS", "a=t1, b=t2")
    assert load_settings(_env_file=None).hsgate_agent_tokens == {"t1": "a", "t2": "b"}


def test_admins_parse_to_a_list_of_slack_user_ids(env: pytest.MonkeyPatch) -> None:
    env.setenv("HSGATE_ADMINS", "U1, U2")
    assert load_settings(_env_file=None).hsgate_admins == ["U1", "U2"]


def test_a_slack_api_url_without_a_trailing_slash_gets_one(env: pytest.MonkeyPatch) -> None:
    env.setenv("SLACK_API_URL", "http://127.0.0.1:9000/api")
    assert load_settings(_env_file=None).slack_api_url == "http://127.0.0.1:9000/api/"


def test_the_cli_reports_a_missing_setting_in_one_line_and_exits_2(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.delenv("SLACK_BOT_TOKEN")
    assert main(["web"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "hsgate: SLACK_BOT_TOKEN is not set\n"
    assert "Traceback" not in captured.out + captured.err


def test_settings_are_read_from_a_dotenv_file_and_the_environment_wins(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HSGATE_FALLBACK_CHANNEL=C0FROMFILE\nPORT=4000\n")
    env.setenv("PORT", "5000")

    settings = load_settings()

    assert settings.hsgate_fallback_channel == "C0FROMFILE"
    assert settings.port == 5000
