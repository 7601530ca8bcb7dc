"""Deciding well: edit before approving, reject with a reason, supersede, stale values, the Home tab, commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.models import Proposal
from tests.conftest import OTHER_AGENT_TOKEN, Gate
from tests.test_flow import CLOSE_ACME, block_text, buttons

SEVERAL = {
    "object_type": "deals",
    "record_id": "1001",
    "changes": {"dealstage": "contractsent", "closedate": "2027-01-20", "amount": "52000", "dealname": "Acme 2027"},
    "reason": "Verbal yes",
}


def open_edit(gate: Gate, proposal: Proposal, user: str = "U0MARIA") -> dict[str, Any]:
    gate.click(proposal, user, "edit")
    view = gate.slack.views_opened[-1]
    assert view["callback_id"] == "hsgate_edit"
    return view


def elements(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block["block_id"]: block["element"] for block in view["blocks"] if block["type"] == "input"}


def test_edit_opens_a_dialog_with_the_right_input_for_each_property(gate: Gate) -> None:
    proposal = gate.carded(SEVERAL)

    inputs = elements(open_edit(gate, proposal))

    assert inputs["edit:dealstage"]["type"] == "static_select"
    assert inputs["edit:dealstage"]["initial_option"]["value"] == "contractsent"
    stages = [option["value"] for option in inputs["edit:dealstage"]["options"]]
    assert stages == [
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    ]
    assert {"text": {"type": "plain_text", "text": "Closed Won", "emoji": False}, "value": "closedwon"} in inputs[
        "edit:dealstage"
    ]["options"]
    assert inputs["edit:closedate"] == {"type": "datepicker", "action_id": "value", "initial_date": "2027-01-20"}
    assert inputs["edit:amount"]["type"] == "number_input" and inputs["edit:amount"]["initial_value"] == "52000"
    assert inputs["edit:dealname"]["type"] == "plain_text_input" and inputs["edit:dealname"]["initial_value"] == "Acme 2027"


def submit_edit(gate: Gate, view: dict[str, Any], user: str = "U0MARIA", **values: dict[str, Any]) -> Any:
    state = {f"edit:{name}": {"value": value} for name, value in values.items()}
    return gate.slack.submit_view(user, view["id"], state)


def test_an_edited_approval_writes_the_edited_value(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    view = open_edit(gate, proposal)

    submit_edit(gate, view, dealstage={"type": "static_select", "selected_option": {"value": "contractsent"}})
    gate.drain()

    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "contractsent"
    answer = gate.fetch(proposal.id).json()
    assert answer["status"] == "applied"
    assert answer["changes"][0] | {} == {
        "property": "dealstage",
        "label": "Deal Stage",
        "old": "appointmentscheduled",
        "new": "closedwon",
        "approved": "contractsent",
    }


def test_the_card_and_thread_show_both_the_proposed_and_the_approved_value(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    submit_edit(
        gate, open_edit(gate, proposal), dealstage={"type": "static_select", "selected_option": {"value": "contractsent"}}
    )
    gate.drain()

    expected = "Deal Stage was edited: the agent proposed Closed Won, Contract Sent was approved."
    assert expected in block_text(gate.card(proposal).blocks)
    assert expected in gate.thread(proposal)[0]


def test_an_invalid_edit_is_shown_in_the_dialog_and_nothing_is_approved(gate: Gate) -> None:
    proposal = gate.carded(SEVERAL)
    view = open_edit(gate, proposal)

    answer = submit_edit(gate, view, amount={"type": "number_input", "value": "lots"})

    assert answer.json()["response_action"] == "errors"
    assert answer.json()["errors"]["edit:amount"].startswith("Amount ('amount') takes a number")
    assert gate.proposal(proposal.id).status == "awaiting_approval"


def test_someone_who_may_not_decide_gets_no_edit_dialog(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.click(proposal, "U0OTHER", "edit")

    assert gate.slack.views_opened == []
    assert gate.ephemerals_for("U0OTHER")[0].startswith("You may not decide this proposal.")


def test_a_rejection_reason_reaches_the_agent_and_the_thread(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.reject(proposal, "U0MARIA", reason="They have not signed yet")
    gate.drain()

    assert gate.fetch(proposal.id).json()["reject_reason"] == "They have not signed yet"
    assert gate.thread(proposal)[0].endswith("Nothing was written. Reason: They have not signed yet")


def test_a_rejection_without_reason_is_fine(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.reject(proposal, "U0MARIA")
    gate.drain()

    assert gate.proposal(proposal.id).reject_reason is None
    assert gate.proposal(proposal.id).status == "rejected"


# -- supersede ---------------------------------------------------------------------------------------


def test_a_newer_proposal_from_the_same_agent_supersedes_the_pending_one(gate: Gate) -> None:
    first = gate.carded(CLOSE_ACME | {"idempotency_key": "a"})
    second = gate.carded(CLOSE_ACME | {"idempotency_key": "b", "changes": {"dealstage": "contractsent"}})

    assert gate.proposal(first.id).status == "superseded"
    assert gate.proposal(first.id).superseded_by == second.id
    assert gate.proposal(second.id).status == "awaiting_approval"
    old_card = block_text(gate.card(first).blocks)
    assert "*Superseded* by <https://hsgate-test.slack.com/archives/" in old_card and f"|proposal `{second.id}`>" in old_card
    assert buttons(gate.card(first).blocks) == []


def test_another_agents_proposal_for_another_field_does_not_supersede(gate: Gate) -> None:
    first = gate.carded(CLOSE_ACME)
    answer = gate.propose(
        {"object_type": "deals", "record_id": "1001", "changes": {"dealname": "x"}, "reason": "y"}, OTHER_AGENT_TOKEN
    )
    gate.drain()

    assert answer.status_code == 202
    assert gate.proposal(first.id).status == "awaiting_approval"


# -- values that moved -------------------------------------------------------------------------------


def test_a_value_changed_between_proposal_and_card_shows_a_conflict_card(gate: Gate) -> None:
    gate.clock.now = datetime.now(UTC) - timedelta(minutes=1)
    answer = gate.propose(CLOSE_ACME)
    gate.hubspot.set_as_user("deals", "1001", "dealstage", "qualifiedtobuy")
    gate.drain()

    proposal = gate.proposal(answer.json()["id"])
    assert proposal.status == "conflict"
    card = gate.card(proposal)
    assert buttons(card.blocks) == []
    assert "Deal Stage is now *Qualified To Buy* (the card showed Appointment Scheduled)." in block_text(card.blocks)


# -- every outcome leaves no live buttons ------------------------------------------------------------


def _applied(gate: Gate, proposal: Proposal) -> None:
    gate.click(proposal, "U0MARIA", "approve")


def _rejected(gate: Gate, proposal: Proposal) -> None:
    gate.reject(proposal, "U0MARIA")


def _conflict(gate: Gate, proposal: Proposal) -> None:
    gate.hubspot.set_as_user("deals", "1001", "dealstage", "qualifiedtobuy")
    gate.click(proposal, "U0MARIA", "approve")


def _failed(gate: Gate, proposal: Proposal) -> None:
    gate.hubspot.fail_next(400, count=2, path_contains="/crm/v3/objects/deals/1001")
    gate.click(proposal, "U0MARIA", "approve")


def _expired(gate: Gate, proposal: Proposal) -> None:
    gate.clock.advance(days=4)
    gate.run_scheduled()


def _superseded(gate: Gate, proposal: Proposal) -> None:
    gate.carded(CLOSE_ACME | {"idempotency_key": "newer", "changes": {"dealstage": "contractsent"}})


def _undone(gate: Gate, proposal: Proposal) -> None:
    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()
    gate.slack.command("U0MARIA", f"undo {proposal.id}")


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (_applied, "applied"),
        (_rejected, "rejected"),
        (_conflict, "conflict"),
        (_failed, "failed"),
        (_expired, "expired"),
        (_superseded, "superseded"),
        (_undone, "undone"),
    ],
)
def test_every_outcome_leaves_the_card_without_buttons(gate: Gate, outcome: Any, status: str) -> None:
    proposal = gate.carded(CLOSE_ACME)

    outcome(gate, proposal)
    gate.drain()

    assert gate.proposal(proposal.id).status == status
    assert buttons(gate.card(proposal).blocks) == []


# -- the Home tab and commands -----------------------------------------------------------------------


def test_the_home_tab_lists_my_pending_approvals_with_their_buttons(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    view = gate.home("U0MARIA")

    assert view["type"] == "home"
    assert [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"] == [
        "Waiting for your decision",
        "Decided by you recently",
        "Applied automatically to your records",
    ]
    [actions] = [b for b in view["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("hsgate_approve", proposal.id),
        ("hsgate_edit", proposal.id),
        ("hsgate_reject", proposal.id),
    ]


def test_approving_from_the_home_tab_applies_and_refreshes_it(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.home("U0MARIA")

    view = gate.home("U0MARIA", after=lambda: gate.slack.click_home("U0MARIA", "hsgate_approve", proposal.id))
    gate.drain()

    assert gate.proposal(proposal.id).status == "applied"
    assert [b for b in view["blocks"] if b["type"] == "actions"] == []
    assert f"`{proposal.id}` · *approved*" in block_text(view["blocks"])


def test_the_home_tab_shows_what_agents_applied_automatically(gate: Gate) -> None:
    answer = gate.propose({"object_type": "deals", "record_id": "1001", "changes": {"description": "auto"}, "reason": "r"})
    gate.drain()

    assert f"`{answer.json()['id']}` · *applied*" in block_text(gate.home("U0MARIA")["blocks"])


def test_pending_lists_what_waits_for_me(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    text = gate.slack.command("U0MARIA", "pending").json()["text"]

    assert text.startswith("*1 waiting for your decision:*\n• ")
    assert f"`{proposal.id}`" in text
    assert gate.slack.command("U0SAM", "pending").json()["text"] == "Nothing waits for your decision."


def test_history_lists_a_records_proposals_from_its_hubspot_url(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    text = gate.slack.command("U0MARIA", "history https://app-eu1.hubspot.com/contacts/4242424/record/0-3/1001").json()["text"]

    assert text.startswith("*Proposals for deals 1001* (newest first):\n• <!date^")
    assert "*applied* by <@U0MARIA>: Deal <https://app-eu1.hubspot.com/contacts/4242424/record/0-3/1001|Acme renewal>" in text


def test_history_takes_a_type_and_id(gate: Gate) -> None:
    assert gate.slack.command("U0MARIA", "history deals/1002").json()["text"] == "No proposals for deals 1002."


# -- two agents, one field -----------------------------------------------------------------------------

RIVAL = {"object_type": "deals", "record_id": "1001", "changes": {"dealstage": "closedlost"}, "reason": "Lost to a competitor"}


def rivals(gate: Gate) -> tuple[Proposal, Proposal]:
    first = gate.carded(CLOSE_ACME)
    answer = gate.propose(RIVAL, OTHER_AGENT_TOKEN)
    gate.drain()
    return gate.proposal(first.id), gate.proposal(answer.json()["id"])


def test_another_agents_value_for_a_waiting_field_joins_the_same_card(gate: Gate) -> None:
    first, second = rivals(gate)

    assert second.status == "awaiting_approval"
    assert second.card == first.card
    assert len(gate.slack.messages("D0MARIA")) == 1
    card = gate.card(first)
    assert "*Alternative from enricher*: Deal Stage → *Closed Lost*" in block_text(card.blocks)
    assert [(b["text"]["text"], b["value"]) for b in buttons(card.blocks) if b["text"]["text"].startswith("Approve")] == [
        ("Approve", first.id)
    ]
    accessories = [b["accessory"] for b in card.blocks if "accessory" in b]
    assert [(a["text"]["text"], a["value"]) for a in accessories] == [("Approve this instead", second.id)]


def test_picking_the_alternative_applies_it_and_supersedes_the_other(gate: Gate) -> None:
    first, second = rivals(gate)
    assert first.card is not None

    gate.slack.click("U0MARIA", first.card.channel, first.card.ts, "hsgate_approve", second.id)
    gate.drain()

    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "closedlost"
    assert gate.proposal(second.id).status == "applied"
    assert gate.proposal(first.id).status == "superseded"
    assert gate.proposal(first.id).superseded_by == second.id
    assert buttons(gate.card(first).blocks) == [] and all("accessory" not in b for b in gate.card(first).blocks)


def test_approving_the_first_supersedes_the_alternative(gate: Gate) -> None:
    first, second = rivals(gate)

    gate.click(first, "U0MARIA", "approve")
    gate.drain()

    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "closedwon"
    assert gate.proposal(second.id).status == "superseded"
    assert [w.body for w in gate.hubspot.writes()] == [{"properties": {"dealstage": "closedwon"}}]


def test_rejecting_the_card_rejects_every_alternative_on_it(gate: Gate) -> None:
    first, second = rivals(gate)

    gate.reject(first, "U0MARIA", reason="Neither")
    gate.drain()

    assert gate.proposal(first.id).status == "rejected"
    assert gate.proposal(second.id).status == "rejected"
    assert gate.proposal(second.id).reject_reason == "Neither"
    assert gate.hubspot.writes() == []
