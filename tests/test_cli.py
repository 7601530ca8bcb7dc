"""The `hsgate` command: policy errors stop start-up; `policy check` and `policy explain`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from tests.conftest import AGENT_TOKEN, Gate
from tests.emulators.hubspot import TOKEN as HUBSPOT_TOKEN
from tests.emulators.slack import BOT_TOKEN, SIGNING_SECRET


@pytest.fixture
def environment(gate: Gate, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": gate.slack.api_url,
        "HUBSPOT_ACCESS_TOKEN": HUBSPOT_TOKEN,
        "HUBSPOT_API_URL": gate.hubspot.url,
        "REDIS_URL": redis_url,
        "HSGATE_AGENT_TOKENS": f"crm-agent={AGENT_TOKEN}",
    }.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def write_policy(directory: Path, text: str) -> Path:
    path = directory / "hsgate.toml"
    path.write_text(text)
    return path


def test_a_malformed_policy_stops_start_up_with_the_line_and_problem(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "HSGATE_POLICY", str(write_policy(environment, '[tiers]\ndefault = "review"\ndeals = { amount = "maybe" }\n'))
    )

    assert main(["worker", "--burst"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("hsgate: hsgate.toml line 3: ")
    assert "'maybe'" in err and len(err.strip().splitlines()) == 1


def test_policy_check_passes_the_default_policy(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check"]) == 0

    assert capsys.readouterr().out.strip() == "default_policy.toml: OK"


def test_policy_check_names_properties_hubspot_does_not_have(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(environment, '[tiers]\ndefault = "review"\ndeals = { dealstag = "auto" }\n')

    assert main(["policy", "check", str(path)]) == 1

    out = capsys.readouterr().out
    assert "hsgate.toml line 3" in out and "dealstag" in out
    assert out.strip().endswith("hsgate.toml: 1 problem(s)")


def test_policy_explain_prints_the_rules_that_fire_and_the_tier(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proposal = {"object_type": "deals", "record_id": "1002", "changes": {"amount": "150000"}, "reason": "upsell"}

    assert main(["policy", "explain", json.dumps(proposal)]) == 0

    out = capsys.readouterr().out
    assert "amount_above" in out
    assert out.strip().endswith("Result: review, 2 approvals")


def test_policy_explain_reports_an_invalid_proposal_in_one_line(environment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proposal = {"object_type": "deals", "record_id": "1002", "changes": {"dealstage": "nowhere"}, "reason": "x"}

    assert main(["policy", "explain", json.dumps(proposal)]) == 2

    assert capsys.readouterr().err.startswith("hsgate: 'nowhere' is not a valid Deal Stage")


def test_policy_explain_applies_the_named_agents_scope(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HSGATE_POLICY", str(write_policy(environment, '[agents.enricher]\nobjects = ["contacts"]\n')))
    proposal = {"object_type": "deals", "record_id": "1002", "changes": {"amount": "1"}, "reason": "x"}

    assert main(["policy", "explain", "--agent", "enricher", json.dumps(proposal)]) == 2

    assert capsys.readouterr().err.startswith("hsgate: agent 'enricher' may not propose changes to deals")
