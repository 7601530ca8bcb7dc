"""The gate end to end: an agent proposes, the owner sees a card, approves or rejects, the thread keeps the record."""

from __future__ import annotations

from typing import Any

from tests.conftest import Gate

CLOSE_ACME = {
    "object_type": "deals",
    "record_id": "1001",
    "changes": {"dealstage": "closedwon"},
    "reason": "Customer signed the order form today",
    "idempotency_key": "run-42-step-3",
}


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [element for block in blocks if block["type"] == "actions" for element in block["elements"]]


def block_text(blocks: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts += [field["text"] for field in block.get("fields", [])]
        parts += [element.get("text", "") for element in block.get("elements", []) if isinstance(element.get("text"), str)]
    return "\n".join(parts)


def test_the_card_goes_to_the_record_owners_dm_and_waits_for_approval(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    assert proposal.status == "awaiting_approval"
    assert proposal.card is not None and proposal.card.channel == "D0MARIA"
    assert [m.ts for m in gate.slack.messages("D0MARIA")] == [proposal.card.ts]
    assert gate.slack.calls_to("users.lookupByEmail") == [{"email": "maria@example.com"}]


def test_the_card_shows_record_labels_old_and_new_values_reason_and_agent(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    text = block_text(gate.card(proposal).blocks)

    assert "*Deal <https://app-eu1.hubspot.com/contacts/4242424/record/0-3/1001|Acme renewal>* · owner Maria Lopez" in text
    assert "*Deal Stage* now\nAppointment Scheduled" in text
    assert "*Deal Stage* proposed\nClosed Won" in text
    assert "Customer signed the order form today" in text
    assert "Proposed by *crm-agent*" in text
    assert "closedwon" not in text and "appointmentscheduled" not in text


def test_the_card_has_a_primary_approve_an_edit_and_a_danger_reject_button(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    assert [(b["text"]["text"], b.get("style"), b["value"]) for b in buttons(gate.card(proposal).blocks)] == [
        ("Approve", "primary", proposal.id),
        ("Edit", None, proposal.id),
        ("Reject", "danger", proposal.id),
    ]
    assert gate.slack.warnings == []


def test_owner_names_and_dates_are_shown_as_people_read_them(gate: Gate) -> None:
    proposal = gate.carded(
        {
            "object_type": "deals",
            "record_id": "1001",
            "changes": {"hubspot_owner_id": "1002", "closedate": "2027-01-15", "amount": 75000},
            "reason": "Handover to Sam",
        }
    )
    text = block_text(gate.card(proposal).blocks)

    assert "*Owner* now\nMaria Lopez" in text and "*Owner* proposed\nSam Okafor" in text
    assert "*Close Date* now\n15 Dec 2026" in text and "*Close Date* proposed\n15 Jan 2027" in text
    assert "*Amount* now\n50,000" in text and "*Amount* proposed\n75,000" in text


def test_approving_writes_to_hubspot_and_marks_the_proposal_applied(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "closedwon"
    applied = gate.proposal(proposal.id)
    assert applied.status == "applied"
    assert applied.decided_by == "U0MARIA"
    assert [w.body for w in gate.hubspot.writes()] == [{"properties": {"dealstage": "closedwon"}}]


def test_the_approved_card_loses_its_buttons_and_says_who_approved(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    card = gate.card(proposal)
    assert buttons(card.blocks) == []
    assert ":white_check_mark: *Approved* by <@U0MARIA>" in block_text(card.blocks)


def test_the_thread_reply_records_property_old_new_and_approver(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    [reply] = gate.thread(proposal)
    assert reply.startswith("Written to HubSpot, approved by <@U0MARIA> <!date^")
    assert reply.endswith("• Deal Stage: Appointment Scheduled → Closed Won")


def test_several_properties_are_approved_and_written_together(gate: Gate) -> None:
    proposal = gate.carded(
        {
            "object_type": "deals",
            "record_id": "1001",
            "changes": {"amount": "65000", "dealtype": "existingbusiness"},
            "reason": "Upsell",
        }
    )

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    assert [w.body for w in gate.hubspot.writes()] == [{"properties": {"amount": "65000", "dealtype": "existingbusiness"}}]
    assert gate.proposal(proposal.id).status == "applied"


def test_rejecting_writes_nothing_and_says_so_in_card_and_thread(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.reject(proposal, "U0MARIA")
    gate.drain()

    assert gate.hubspot.writes() == []
    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "appointmentscheduled"
    assert gate.proposal(proposal.id).status == "rejected"
    assert buttons(gate.card(proposal).blocks) == []
    [reply] = gate.thread(proposal)
    assert reply.startswith("Rejected by <@U0MARIA>") and reply.endswith("Nothing was written.")


def test_the_agent_polls_the_outcome_with_its_history(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    answer = gate.fetch(proposal.id).json()

    assert answer["status"] == "applied"
    assert answer["changes"] == [
        {"property": "dealstage", "label": "Deal Stage", "old": "appointmentscheduled", "new": "closedwon"}
    ]
    assert [(e["type"], e["actor"]) for e in answer["events"]] == [
        ("proposed", "crm-agent"),
        ("prepared", "hsgate"),
        ("card_posted", "hsgate"),
        ("approval", "U0MARIA"),
        ("applied", "hsgate"),
    ]


def test_a_record_without_owner_goes_to_the_fallback_channel_saying_why(gate: Gate) -> None:
    proposal = gate.carded({"object_type": "deals", "record_id": "1003", "changes": {"amount": "9000"}, "reason": "Pilot grew"})

    assert proposal.card is not None and proposal.card.channel == "C0FALLBACK"
    assert "Sent here because the deal has no owner in HubSpot." in block_text(gate.card(proposal).blocks)
    assert proposal.approvers == ["U0ADMIN"]


def test_an_owner_without_slack_account_goes_to_the_fallback_channel_saying_why(gate: Gate) -> None:
    proposal = gate.carded(
        {"object_type": "deals", "record_id": "1004", "changes": {"amount": "31000"}, "reason": "Price update"}
    )

    assert proposal.card is not None and proposal.card.channel == "C0FALLBACK"
    assert "its owner Nora Blake has no Slack account for nora@example.com" in block_text(gate.card(proposal).blocks)


def test_an_admin_decides_a_fallback_card(gate: Gate) -> None:
    proposal = gate.carded({"object_type": "deals", "record_id": "1003", "changes": {"amount": "9000"}, "reason": "Pilot grew"})

    gate.click(proposal, "U0ADMIN", "approve")
    gate.drain()

    assert gate.hubspot.get_property("deals", "1003", "amount") == "9000"


def test_a_record_that_does_not_exist_fails_without_a_card(gate: Gate) -> None:
    answer = gate.propose({"object_type": "deals", "record_id": "999999", "changes": {"amount": "1"}, "reason": "x"})
    gate.drain()

    proposal = gate.proposal(answer.json()["id"])
    assert proposal.status == "failed"
    assert proposal.error == "deals record 999999 does not exist"
    assert gate.slack.calls_to("chat.postMessage") == []


def test_a_stage_from_another_pipeline_fails_with_the_pipelines_stages(gate: Gate) -> None:
    answer = gate.propose({"object_type": "deals", "record_id": "1001", "changes": {"dealstage": "renewalwon"}, "reason": "x"})
    gate.drain()

    proposal = gate.proposal(answer.json()["id"])
    assert proposal.status == "failed"
    assert proposal.error is not None
    assert proposal.error.startswith("stage 'renewalwon' is not in the record's pipeline 'Sales Pipeline'")


def test_a_contact_card_names_the_person(gate: Gate) -> None:
    proposal = gate.carded(
        {"object_type": "contacts", "record_id": "2001", "changes": {"lastname": "Doe-Smith"}, "reason": "Married"}
    )

    assert proposal.record is not None and proposal.record.name == "Jane Doe"
    assert "record/0-1/2001|Jane Doe>" in block_text(gate.card(proposal).blocks)
