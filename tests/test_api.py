"""The agents' API: POST /api/v1/proposals and GET /api/v1/proposals/{id}, over the real stack."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import AGENT_TOKEN, OTHER_AGENT_TOKEN, Gate
from tests.emulators.hubspot import TOKEN as HUBSPOT_TOKEN
from tests.emulators.slack import BOT_TOKEN, SIGNING_SECRET

MARIA_DM = "D0MARIA"
SECRETS = (HUBSPOT_TOKEN, BOT_TOKEN, SIGNING_SECRET, AGENT_TOKEN, OTHER_AGENT_TOKEN)


def deal(changes: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A valid update of deal 1001; `fields` override or (with None) drop top-level fields."""
    body: dict[str, Any] = {
        "action": "update",
        "object_type": "deals",
        "record_id": "1001",
        "changes": changes if changes is not None else {"dealstage": "qualifiedtobuy"},
        "reason": "The customer confirmed budget on the call.",
    }
    body.update(fields)
    return {name: value for name, value in body.items() if value is not None}


def post_raw(gate: Gate, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    sent = {"Content-Type": "application/json", "Authorization": f"Bearer {AGENT_TOKEN}"} | (headers or {})
    return gate.http.post("/api/v1/proposals", content=content, headers=sent)


def assert_nothing_happened(gate: Gate) -> None:
    """A refused proposal leaves no stored proposal, no job, no card and no HubSpot write."""
    assert gate.rt.redis.keys("hsgate:proposal:*") == []
    assert gate.rt.queue.rq.count == 0
    gate.drain()
    assert gate.slack.calls_to("chat.postMessage") == []
    assert gate.slack.messages(MARIA_DM) == []
    assert gate.hubspot.writes() == []


def refused(gate: Gate, answer: httpx.Response, status: int = 422, code: str = "invalid_proposal") -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == code
    for secret in SECRETS:
        assert secret not in answer.text
    assert_nothing_happened(gate)
    return body


def problem(gate: Gate, body: dict[str, Any], field: str) -> dict[str, Any]:
    """Propose `body`, expect a 422 with exactly one problem, naming `field`; return that problem."""
    answer = refused(gate, gate.propose(body))
    assert [p["field"] for p in answer["errors"]] == [field], answer
    return answer["errors"][0]


# --- authentication ---------------------------------------------------------------------------


def test_a_missing_token_is_refused_with_401(gate: Gate) -> None:
    answer = gate.http.post("/api/v1/proposals", json=deal())
    body = refused(gate, answer, 401, "unauthorized")
    assert "Bearer" in body["message"]


def test_an_unknown_token_is_refused_with_401(gate: Gate) -> None:
    refused(gate, gate.propose(deal(), token="not-a-known-token"), 401, "unauthorized")


def test_a_basic_scheme_is_refused_with_401_even_with_a_known_token(gate: Gate) -> None:
    answer = post_raw(gate, json.dumps(deal()).encode(), {"Authorization": f"Basic {AGENT_TOKEN}"})
    refused(gate, answer, 401, "unauthorized")


# --- accepted proposals -----------------------------------------------------------------------


def test_a_valid_proposal_is_queued_with_202_and_echoed(gate: Gate) -> None:
    answer = gate.propose(deal())
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["id"] and body["status"] == "queued"
    assert body["agent"] == "crm-agent"
    assert (body["object_type"], body["record_id"], body["action"]) == ("deals", "1001", "update")
    assert [(c["property"], c["new"]) for c in body["changes"]] == [("dealstage", "qualifiedtobuy")]
    assert body["reason"] == "The customer confirmed budget on the call."
    assert not any(secret in answer.text for secret in SECRETS)


def test_the_same_idempotency_key_from_the_same_agent_returns_the_first_proposal_with_200(gate: Gate) -> None:
    first = gate.propose(deal(idempotency_key="run-42"))
    again = gate.propose(deal(idempotency_key="run-42"))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    gate.drain()
    assert len(gate.slack.messages(MARIA_DM)) == 1


def test_the_same_idempotency_key_from_another_agent_is_a_different_proposal(gate: Gate) -> None:
    first = gate.propose(deal(idempotency_key="run-42"))
    other = gate.propose(deal(idempotency_key="run-42"), token=OTHER_AGENT_TOKEN)
    assert (first.status_code, other.status_code) == (202, 202)
    assert other.json()["id"] != first.json()["id"]
    assert other.json()["agent"] == "enricher"


def test_several_properties_in_one_proposal_are_stored_together(gate: Gate) -> None:
    answer = gate.propose(deal({"dealstage": "qualifiedtobuy", "amount": 125000}))
    assert answer.status_code == 202, answer.text
    stored = gate.proposal(answer.json()["id"])
    assert {(c.property, c.new) for c in stored.changes} == {("dealstage", "qualifiedtobuy"), ("amount", "125000")}


# --- refusals of the body's shape ---------------------------------------------------------------


def test_a_missing_reason_is_refused_naming_reason(gate: Gate) -> None:
    body = deal()
    del body["reason"]
    assert "reason" in problem(gate, body, "reason")["message"]


def test_an_empty_reason_is_refused_naming_reason(gate: Gate) -> None:
    problem(gate, deal(reason="   "), "reason")


def test_an_unknown_object_type_is_refused_listing_the_allowed_types(gate: Gate) -> None:
    found = problem(gate, deal(object_type="leads"), "object_type")
    assert found["allowed"] == ["contacts", "companies", "deals", "tickets"]
    assert "contacts, companies, deals, tickets" in found["message"]


def test_a_non_numeric_record_id_is_refused_naming_record_id(gate: Gate) -> None:
    assert "digits only" in problem(gate, deal(record_id="acme"), "record_id")["message"]


def test_an_unknown_top_level_field_is_refused_naming_it(gate: Gate) -> None:
    assert "unknown field 'priority'" in problem(gate, deal(priority="high"), "priority")["message"]


def test_an_update_without_changes_is_refused(gate: Gate) -> None:
    body = deal()
    del body["changes"]
    found = refused(gate, gate.propose(body))
    assert "needs `changes`" in found["message"]


def test_a_note_sent_with_an_update_is_refused(gate: Gate) -> None:
    found = refused(gate, gate.propose(deal(note={"body": "Called them."})))
    assert "`note` does not belong to action 'update'" in found["message"]
    assert "create_note" in found["message"]


# --- refusals against HubSpot's schema ----------------------------------------------------------


def test_an_unknown_property_is_refused_suggesting_the_close_match(gate: Gate) -> None:
    found = problem(gate, deal({"dealstag": "qualifiedtobuy"}), "changes.dealstag")
    assert "Did you mean: dealstage" in found["message"]
    assert "dealstage" in found["allowed"]


@pytest.mark.parametrize(("name", "why"), [("hs_object_id", "read-only"), ("hs_deal_stage_probability", "calculated")])
def test_a_property_hubspot_owns_is_refused_saying_why(gate: Gate, name: str, why: str) -> None:
    found = problem(gate, deal({name: "5"}), f"changes.{name}")
    assert why in found["message"] and "agents cannot write it" in found["message"]


def test_a_stage_that_does_not_exist_is_refused_listing_stages_with_labels(gate: Gate) -> None:
    found = problem(gate, deal({"dealstage": "negotiation"}), "changes.dealstage")
    assert "'negotiation' is not a valid" in found["message"]
    assert "closedwon (Closed Won" in found["message"]
    assert found["allowed"] and any(a.startswith("closedwon (Closed Won") for a in found["allowed"])


def test_a_stage_label_instead_of_its_id_is_refused_naming_the_id(gate: Gate) -> None:
    found = problem(gate, deal({"dealstage": "Closed Won"}), "changes.dealstage")
    assert "send its id 'closedwon'" in found["message"]


def test_an_owner_that_does_not_exist_is_refused(gate: Gate) -> None:
    found = problem(gate, deal({"hubspot_owner_id": "9999"}), "changes.hubspot_owner_id")
    assert "'9999' is not a valid Owner" in found["message"]
    assert {a.split(" ")[0] for a in found["allowed"]} == {"1001", "1002", "1003"}


@pytest.mark.parametrize(
    ("name", "value", "phrase"),
    [
        ("amount", "lots", "takes a number"),
        ("closedate", "next friday", "takes a date like"),
        ("contract_start", "2026-12-31T15:00:00Z", "is a date without a time"),
    ],
    ids=["non-number-amount", "malformed-date", "datetime-for-date-only"],
)
def test_a_value_of_the_wrong_type_is_refused(gate: Gate, name: str, value: str, phrase: str) -> None:
    assert phrase in problem(gate, deal({name: value}), f"changes.{name}")["message"]


def test_a_body_that_is_not_json_is_refused(gate: Gate) -> None:
    found = refused(gate, post_raw(gate, b'{"object_type": "deals",'))
    assert [p["field"] for p in found["errors"]] == ["body"]
    assert "not valid JSON" in found["message"]


def test_a_body_over_the_size_limit_is_refused_with_413(gate: Gate) -> None:
    found = refused(gate, gate.propose(deal(reason="x" * 300_000)), 413, "too_large")
    assert "bytes" in found["message"]


# --- reading a proposal back --------------------------------------------------------------------


def test_get_returns_the_status_changes_and_event_history(gate: Gate) -> None:
    pid = gate.propose(deal()).json()["id"]
    gate.drain()
    answer = gate.fetch(pid)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == pid and body["status"] == "awaiting_approval"
    assert [(c["property"], c["old"], c["new"]) for c in body["changes"]] == [
        ("dealstage", "appointmentscheduled", "qualifiedtobuy")
    ]
    assert [e["type"] for e in body["events"]] == ["proposed", "prepared", "card_posted"]
    assert all(e["at"] and e["actor"] for e in body["events"])
    assert body["events"][0]["actor"] == "crm-agent"
    assert not any(secret in answer.text for secret in SECRETS)


def test_get_of_an_unknown_id_is_404(gate: Gate) -> None:
    answer = gate.fetch("no-such-proposal")
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def test_get_of_another_agents_proposal_is_404(gate: Gate) -> None:
    pid = gate.propose(deal()).json()["id"]
    answer = gate.fetch(pid, token=OTHER_AGENT_TOKEN)
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    assert "Acme" not in answer.text and "qualifiedtobuy" not in answer.text


def test_get_without_a_token_is_401(gate: Gate) -> None:
    pid = gate.propose(deal()).json()["id"]
    answer = gate.http.get(f"/api/v1/proposals/{pid}")
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
    assert "qualifiedtobuy" not in answer.text
