"""`/hsgate undo <id>`: write the old values back, for the approver, the owner or an admin."""

from __future__ import annotations

from app.models import Proposal
from tests.conftest import Gate
from tests.test_flow import CLOSE_ACME, buttons


def applied(gate: Gate, body: dict[str, object] = CLOSE_ACME, approver: str = "U0MARIA") -> Proposal:
    proposal = gate.carded(body)
    gate.click(proposal, approver, "approve")
    gate.drain()
    return gate.proposal(proposal.id)


def undo(gate: Gate, proposal: Proposal, user: str) -> str:
    answer = gate.slack.command(user, f"undo {proposal.id}")
    assert answer.status_code == 200
    return str(answer.json()["text"])


def test_undo_by_the_approver_writes_the_old_value_back(gate: Gate) -> None:
    proposal = applied(gate)

    said = undo(gate, proposal, "U0MARIA")
    gate.drain()

    assert said.startswith(f"Undoing `{proposal.id}`")
    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "appointmentscheduled"
    assert gate.proposal(proposal.id).status == "undone"


def test_undo_replies_in_the_cards_thread(gate: Gate) -> None:
    proposal = applied(gate)

    undo(gate, proposal, "U0MARIA")
    gate.drain()

    undone = gate.thread(proposal)[-1]
    assert undone.startswith("Undone by <@U0MARIA>")
    assert undone.endswith("• Deal Stage: Closed Won → Appointment Scheduled")


def test_undo_by_an_admin_is_allowed(gate: Gate) -> None:
    proposal = applied(gate)

    undo(gate, proposal, "U0ADMIN")
    gate.drain()

    assert gate.proposal(proposal.id).status == "undone"


def test_undo_by_someone_else_is_refused_and_writes_nothing(gate: Gate) -> None:
    proposal = applied(gate)

    said = undo(gate, proposal, "U0OTHER")
    gate.drain()

    assert said == "You may not undo this proposal. Only <@U0MARIA>, <@U0ADMIN> may."
    assert gate.proposal(proposal.id).status == "applied"
    assert len(gate.hubspot.writes()) == 1


def test_undo_of_a_proposal_that_was_not_applied_is_refused(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    said = undo(gate, proposal, "U0MARIA")

    assert said == f"Only applied proposals can be undone; `{proposal.id}` is awaiting_approval."


def test_undo_twice_writes_once(gate: Gate) -> None:
    proposal = applied(gate)

    undo(gate, proposal, "U0MARIA")
    second = undo(gate, proposal, "U0MARIA")
    gate.drain()

    assert second == f"Proposal `{proposal.id}` is already being undone."
    assert len(gate.hubspot.writes()) == 2


def test_undo_is_refused_when_the_value_changed_since_and_says_who_changed_it(gate: Gate) -> None:
    proposal = applied(gate)
    gate.hubspot.set_as_user("deals", "1001", "dealstage", "contractsent", user_id=9002)

    undo(gate, proposal, "U0MARIA")
    gate.drain()

    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "contractsent"
    refused = gate.proposal(proposal.id)
    assert refused.status == "applied"
    reply = gate.thread(proposal)[-1]
    assert reply.startswith("Undo refused, nothing was written: Deal Stage is now Contract Sent, changed by Sam Okafor (crm ui)")


def test_undo_is_an_event_in_the_history(gate: Gate) -> None:
    proposal = applied(gate)

    undo(gate, proposal, "U0MARIA")
    gate.drain()

    events = [(e.type, e.actor) for e in gate.proposal(proposal.id).events]
    assert events[-2:] == [("undo_requested", "U0MARIA"), ("undone", "U0MARIA")]


def test_the_applied_reply_carries_an_undo_button_that_undoes(gate: Gate) -> None:
    proposal = applied(gate)
    assert proposal.card is not None
    [reply] = gate.slack.replies(proposal.card.channel, proposal.card.ts)

    gate.slack.click("U0MARIA", reply.channel, reply.ts, "hsgate_undo", proposal.id)
    gate.drain()

    assert gate.proposal(proposal.id).status == "undone"
    assert gate.ephemerals_for("U0MARIA") == [
        f"Undoing `{proposal.id}`: the earlier values are being written back. The card's thread will confirm."
    ]


def test_only_the_newest_thread_reply_keeps_a_live_button(gate: Gate) -> None:
    proposal = applied(gate)
    undo(gate, proposal, "U0MARIA")
    gate.drain()
    assert proposal.card is not None

    applied_reply, undone_reply = gate.slack.replies(proposal.card.channel, proposal.card.ts)

    assert buttons(applied_reply.blocks) == []
    assert [b["text"]["text"] for b in buttons(undone_reply.blocks)] == ["Re-apply"]


def test_undoing_an_undo_applies_the_change_again(gate: Gate) -> None:
    proposal = applied(gate)
    undo(gate, proposal, "U0MARIA")
    gate.drain()

    said = undo(gate, proposal, "U0MARIA")
    gate.drain()

    assert said.startswith(f"Re-applying `{proposal.id}`")
    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "closedwon"
    assert gate.proposal(proposal.id).status == "applied"
    assert gate.thread(proposal)[-1].startswith("Re-applied by <@U0MARIA>")


def test_reapplying_is_refused_when_the_value_drifted_since_the_undo(gate: Gate) -> None:
    proposal = applied(gate)
    undo(gate, proposal, "U0MARIA")
    gate.drain()
    gate.hubspot.set_as_user("deals", "1001", "dealstage", "qualifiedtobuy")

    undo(gate, proposal, "U0MARIA")
    gate.drain()

    assert gate.proposal(proposal.id).status == "undone"
    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "qualifiedtobuy"


def test_undoing_a_lifecycle_stage_moves_it_back_in_two_writes(gate: Gate) -> None:
    proposal = applied(
        gate, {"object_type": "contacts", "record_id": "2001", "changes": {"lifecyclestage": "customer"}, "reason": "signed"}
    )

    undo(gate, proposal, "U0MARIA")
    gate.drain()

    assert gate.hubspot.get_property("contacts", "2001", "lifecyclestage") == "opportunity"
    assert [w.body for w in gate.hubspot.writes()][-2:] == [
        {"properties": {"lifecyclestage": ""}},
        {"properties": {"lifecyclestage": "opportunity"}},
    ]


def test_an_unknown_command_prints_help(gate: Gate) -> None:
    answer = gate.slack.command("U0MARIA", "frobnicate")

    assert answer.json()["text"].startswith("*hsgate* puts AI agents' HubSpot changes in front of the record's owner.")


def test_status_tells_where_a_proposal_stands(gate: Gate) -> None:
    proposal = applied(gate)

    answer = gate.slack.command("U0MARIA", f"status {proposal.id}")

    assert answer.json()["text"] == f"`{proposal.id}` (Deal Stage on deals 1001, from crm-agent): *applied* by <@U0MARIA>."
