"""The risk policy through the whole stack: tiers, rules, routing, approvers, scope, notes, tasks, digests."""

from __future__ import annotations

from typing import Any

from app.models import Proposal
from tests.conftest import OTHER_AGENT_TOKEN, Gate
from tests.test_flow import block_text, buttons

# The shipped tiers, with the fields these tests move made auto so that only the rules decide.
RULES_ONLY = """
[tiers]
default = "review"
deals = { dealstage = "auto", closedate = "auto", amount = "auto", hubspot_owner_id = "auto" }
contacts = { lifecyclestage = "auto" }

[[rules]]
when = "{when}"
{extra}
"""


def rules_only(gate: Gate, when: str, extra: str = 'tier = "review"') -> None:
    gate.use_policy(RULES_ONLY.replace("{when}", when).replace("{extra}", extra))


def propose(gate: Gate, object_type: str, record_id: str, changes: dict[str, Any], token: str | None = None) -> Proposal:
    body = {"object_type": object_type, "record_id": record_id, "changes": changes, "reason": "test"}
    answer = gate.propose(body, **({"token": token} if token else {}))
    assert answer.status_code == 202, answer.text
    gate.drain()
    return gate.proposal(answer.json()["id"])


# -- tiers -----------------------------------------------------------------------------------------


def test_an_auto_tier_change_is_applied_at_once_without_a_card(gate: Gate) -> None:
    proposal = propose(gate, "deals", "1001", {"description": "Renewal includes support"})

    assert proposal.status == "applied"
    assert proposal.tier == "auto"
    assert proposal.card is None
    assert gate.hubspot.get_property("deals", "1001", "description") == "Renewal includes support"
    assert gate.slack.messages("D0MARIA") == []
    assert [e.type for e in proposal.events] == ["proposed", "prepared", "auto_approved", "applied"]


def test_a_property_the_policy_does_not_name_needs_review(gate: Gate) -> None:
    proposal = propose(gate, "deals", "1001", {"dealname": "Acme renewal 2027"})

    assert proposal.status == "awaiting_approval"
    assert proposal.tier == "review"


def test_a_block_tier_property_is_refused_with_422_naming_the_rule(gate: Gate) -> None:
    gate.use_policy('[tiers]\ndeals = { amount = "block" }\n')

    answer = gate.propose({"object_type": "deals", "record_id": "1001", "changes": {"amount": "1"}, "reason": "x"})

    assert answer.status_code == 422
    [problem] = answer.json()["errors"]
    assert problem["field"] == "changes.amount"
    assert 'policy hsgate.toml [tiers] deals.amount = "block"' in problem["message"]
    assert gate.rt.redis.keys("hsgate:proposal:*") == []


# -- rules -----------------------------------------------------------------------------------------


def test_a_stage_moving_backward_needs_review_and_the_card_says_why(gate: Gate) -> None:
    rules_only(gate, "stage_backward")

    backward = propose(gate, "deals", "1002", {"dealstage": "appointmentscheduled"})

    assert backward.status == "awaiting_approval"
    assert "Policy rules that apply:\n• stage_backward:" in block_text(gate.card(backward).blocks)


def test_a_stage_moving_forward_passes_the_stage_backward_rule(gate: Gate) -> None:
    rules_only(gate, "stage_backward")

    assert propose(gate, "deals", "1002", {"dealstage": "contractsent"}).status == "applied"


def test_a_move_into_a_closed_stage_needs_review(gate: Gate) -> None:
    rules_only(gate, "closed_stage")

    assert propose(gate, "deals", "1002", {"dealstage": "closedlost"}).status == "awaiting_approval"


def test_a_close_date_moved_further_than_allowed_needs_review(gate: Gate) -> None:
    rules_only(gate, "date_shift_days", 'value = 30\ntier = "review"')

    assert propose(gate, "deals", "1001", {"closedate": "2027-02-15"}).status == "awaiting_approval"
    assert propose(gate, "deals", "1002", {"closedate": "2027-02-10"}).status == "applied"


def test_a_close_date_in_the_past_needs_review(gate: Gate) -> None:
    rules_only(gate, "date_in_past")

    assert propose(gate, "deals", "1001", {"closedate": "2026-11-01"}).status == "awaiting_approval"


def test_a_large_amount_change_needs_review(gate: Gate) -> None:
    rules_only(gate, "amount_change_pct", 'value = 25\ntier = "review"')

    assert propose(gate, "deals", "1001", {"amount": "70000"}).status == "awaiting_approval"
    assert propose(gate, "deals", "1002", {"amount": "125000"}).status == "applied"


def test_an_owner_change_needs_review(gate: Gate) -> None:
    rules_only(gate, "owner_change")

    assert propose(gate, "deals", "1001", {"hubspot_owner_id": "1002"}).status == "awaiting_approval"


def test_a_lifecycle_stage_moving_backward_needs_review_and_is_written_in_two_steps(gate: Gate) -> None:
    rules_only(gate, "lifecycle_backward")
    proposal = propose(gate, "contacts", "2001", {"lifecyclestage": "lead"})
    assert proposal.status == "awaiting_approval"

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    assert gate.hubspot.get_property("contacts", "2001", "lifecyclestage") == "lead"
    assert [w.body for w in gate.hubspot.writes()] == [
        {"properties": {"lifecyclestage": ""}},
        {"properties": {"lifecyclestage": "lead"}},
    ]


def test_an_amount_above_the_limit_needs_two_approvals(gate: Gate) -> None:
    proposal = propose(gate, "deals", "1002", {"amount": "150000"})
    assert proposal.approvals_required == 2
    assert "Who may decide: <@U0SAM>, <@U0ADMIN> · 0 of 2 approvals" in block_text(gate.card(proposal).blocks)

    gate.click(proposal, "U0SAM", "approve")
    gate.drain()

    assert gate.proposal(proposal.id).status == "awaiting_approval"
    assert gate.hubspot.writes() == []
    assert "· 1 of 2 approvals" in block_text(gate.card(proposal).blocks)
    assert gate.ephemerals_for("U0SAM") == ["Your approval is recorded; 1 more needed."]


def test_the_same_person_cannot_give_both_approvals(gate: Gate) -> None:
    proposal = propose(gate, "deals", "1002", {"amount": "150000"})

    gate.click(proposal, "U0SAM", "approve")
    gate.click(proposal, "U0SAM", "approve")
    gate.drain()

    assert gate.proposal(proposal.id).approvals == ["U0SAM"]
    assert gate.ephemerals_for("U0SAM", count=2)[1] == "You have approved this already; it waits for another approver."


def test_the_second_approval_applies_the_change(gate: Gate) -> None:
    proposal = propose(gate, "deals", "1002", {"amount": "150000"})

    gate.click(proposal, "U0SAM", "approve")
    gate.click(proposal, "U0ADMIN", "approve")
    gate.drain()

    assert gate.proposal(proposal.id).status == "applied"
    assert gate.hubspot.get_property("deals", "1002", "amount") == "150000"


# -- routing and approvers ----------------------------------------------------------------------------


def test_the_policy_routes_an_owners_cards_to_a_channel(gate: Gate) -> None:
    gate.use_policy('[routing]\nowners = { "1001" = "C0SALESEU" }\n')

    proposal = propose(gate, "deals", "1001", {"dealname": "x"})

    assert proposal.card is not None and proposal.card.channel == "C0SALESEU"
    assert gate.slack.messages("D0MARIA") == []


def test_the_policy_routes_a_teams_cards_to_a_channel(gate: Gate) -> None:
    gate.use_policy('[routing]\nteams = { "T1" = "C0SALESEU" }\n')

    marias = propose(gate, "deals", "1001", {"dealname": "x"})
    sams = propose(gate, "deals", "1002", {"dealname": "y"})

    assert marias.card is not None and marias.card.channel == "C0SALESEU"
    assert sams.card is not None and sams.card.channel == "D0SAM"


def test_the_policy_routes_a_pipelines_cards_to_a_channel(gate: Gate) -> None:
    gate.use_policy('[routing]\npipelines = { "renewals" = "C0DEALS" }\n')

    renewal = propose(gate, "deals", "1005", {"dealname": "x"})
    sales = propose(gate, "deals", "1001", {"dealname": "y"})

    assert renewal.card is not None and renewal.card.channel == "C0DEALS"
    assert sales.card is not None and sales.card.channel == "D0MARIA"


def test_the_policy_fallback_channel_is_used_when_the_environment_names_none(gate: Gate) -> None:
    gate.use_policy('[routing]\nfallback_channel = "C0BACKUP"\n')
    gate.rt.settings = gate.rt.settings.model_copy(update={"hsgate_fallback_channel": None})
    try:
        proposal = propose(gate, "deals", "1003", {"dealname": "x"})
    finally:
        gate.rt.settings = gate.rt.settings.model_copy(update={"hsgate_fallback_channel": "C0FALLBACK"})

    assert proposal.card is not None and proposal.card.channel == "C0BACKUP"


def test_a_delegate_gets_a_copy_of_the_owners_card_and_may_decide(gate: Gate) -> None:
    gate.use_policy('[approvers]\ndelegates = { "1001" = ["U0DEPUTY"] }\n')
    proposal = propose(gate, "deals", "1001", {"dealname": "x"})
    assert proposal.card is not None
    [copy] = proposal.card.copies
    assert copy.channel == "D0DEPUTY"
    assert "Who may decide: <@U0MARIA>, <@U0DEPUTY>, <@U0ADMIN>" in block_text(gate.slack.message(copy.channel, copy.ts).blocks)

    gate.slack.click("U0DEPUTY", copy.channel, copy.ts, "hsgate_approve", proposal.id)
    gate.drain()

    assert gate.proposal(proposal.id).status == "applied"
    assert buttons(gate.card(proposal).blocks) == []
    assert buttons(gate.slack.message(copy.channel, copy.ts).blocks) == []


def test_an_admin_named_in_the_policy_may_decide(gate: Gate) -> None:
    gate.use_policy('[approvers]\nadmins = ["U0OTHER"]\n')
    proposal = propose(gate, "deals", "1001", {"dealname": "x"})

    gate.reject(proposal, "U0OTHER")
    gate.drain()

    assert gate.proposal(proposal.id).status == "rejected"


# -- agent scope -----------------------------------------------------------------------------------

SCOPE = '[agents.enricher]\nobjects = ["contacts"]\nproperties = ["jobtitle", "phone"]\n'


def test_an_agent_outside_its_object_scope_gets_422_naming_the_scope(gate: Gate) -> None:
    gate.use_policy(SCOPE)

    answer = gate.propose(
        {"object_type": "deals", "record_id": "1001", "changes": {"dealname": "x"}, "reason": "x"}, OTHER_AGENT_TOKEN
    )

    assert answer.status_code == 422
    [problem] = answer.json()["errors"]
    assert problem["field"] == "object_type"
    assert problem["allowed"] == ["contacts"]
    assert "[agents.enricher]" in problem["message"]


def test_an_agent_outside_its_property_scope_gets_422_listing_what_it_may_change(gate: Gate) -> None:
    gate.use_policy(SCOPE)

    answer = gate.propose(
        {"object_type": "contacts", "record_id": "2001", "changes": {"lastname": "x"}, "reason": "x"}, OTHER_AGENT_TOKEN
    )

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["allowed"] == ["jobtitle", "phone"]


def test_an_agent_inside_its_scope_may_propose(gate: Gate) -> None:
    gate.use_policy(SCOPE)

    assert propose(gate, "contacts", "2001", {"jobtitle": "CTO"}, token=OTHER_AGENT_TOKEN).status == "awaiting_approval"


# -- notes, tasks and the digest ---------------------------------------------------------------------


def create(gate: Gate, action: str, payload: dict[str, Any]) -> Proposal:
    key = "note" if action == "create_note" else "task"
    answer = gate.propose({"action": action, "object_type": "deals", "record_id": "1001", key: payload, "reason": "call notes"})
    assert answer.status_code == 202, answer.text
    gate.drain()
    return gate.proposal(answer.json()["id"])


def test_a_note_is_created_on_the_record_and_associated_with_it(gate: Gate) -> None:
    proposal = create(gate, "create_note", {"body": "Customer asked for a quote"})

    assert proposal.status == "applied"
    assert proposal.created_object_id is not None
    assert gate.hubspot.associations("deals", "1001", "notes") == [proposal.created_object_id]
    assert gate.hubspot.get_property("notes", proposal.created_object_id, "hs_note_body") == "Customer asked for a quote"


def test_a_task_is_created_with_its_due_date_and_owner(gate: Gate) -> None:
    proposal = create(
        gate, "create_task", {"subject": "Send quote", "body": "By Friday", "due": "2026-12-01", "owner_id": "1002"}
    )

    task = gate.hubspot.record("tasks", str(proposal.created_object_id))
    assert task["hs_task_subject"] == "Send quote"
    assert task["hubspot_owner_id"] == "1002"
    assert str(task["hs_timestamp"]).startswith("2026-12-01T00:00:00")
    assert gate.hubspot.associations("deals", "1001", "tasks") == [proposal.created_object_id]


def test_undoing_a_note_archives_it(gate: Gate) -> None:
    proposal = create(gate, "create_note", {"body": "Oops"})

    gate.slack.command("U0MARIA", f"undo {proposal.id}")
    gate.drain()

    assert gate.hubspot.archived("notes", str(proposal.created_object_id))
    assert gate.proposal(proposal.id).status == "undone"


def test_undoing_a_task_archives_it(gate: Gate) -> None:
    proposal = create(gate, "create_task", {"subject": "Call back"})

    gate.slack.command("U0MARIA", f"undo {proposal.id}")
    gate.drain()

    assert gate.hubspot.archived("tasks", str(proposal.created_object_id))
    assert gate.proposal(proposal.id).status == "undone"


def test_auto_applied_changes_reach_the_owner_in_one_digest(gate: Gate) -> None:
    propose(gate, "deals", "1001", {"description": "One"})
    create(gate, "create_note", {"body": "Two"})
    assert gate.slack.messages("D0MARIA") == []

    ran = gate.run_scheduled()

    assert len(ran) == 1
    [digest] = gate.slack.messages("D0MARIA")
    assert digest.text == "hsgate applied 2 change(s) from agents to your records"
    assert [b["accessory"]["text"]["text"] for b in digest.blocks if "accessory" in b] == ["Undo", "Undo"]


def test_the_digests_undo_button_reverts_the_change(gate: Gate) -> None:
    proposal = propose(gate, "deals", "1001", {"description": "One"})
    gate.run_scheduled()
    [digest] = gate.slack.messages("D0MARIA")

    gate.slack.click("U0MARIA", digest.channel, digest.ts, "hsgate_undo", proposal.id)
    gate.drain()

    assert gate.hubspot.get_property("deals", "1001", "description") is None
    assert gate.proposal(proposal.id).status == "undone"
    record = "*Deal <https://app-eu1.hubspot.com/contacts/4242424/record/0-3/1001|Acme renewal>*"
    assert gate.slack.messages("D0MARIA")[-1].text.startswith(f"{record} (`{proposal.id}`): Undone by <@U0MARIA>")
