"""A gate that can be fooled is worse than none: clicks, races, stale values, forged requests, HubSpot faults."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from app import preparation, writing
from app.models import Status
from tests.conftest import Gate
from tests.emulators.slack import SIGNING_SECRET
from tests.test_flow import CLOSE_ACME, block_text, buttons


def test_a_double_click_writes_once_and_tells_the_clicker_what_happened(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.click(proposal, "U0MARIA", "approve")
    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    assert len(gate.hubspot.writes()) == 1
    [told] = gate.ephemerals_for("U0MARIA")
    assert told.startswith("Nothing changed: this proposal is already *approved* by <@U0MARIA>")


def test_approve_then_reject_by_a_second_approver_changes_nothing(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.click(proposal, "U0MARIA", "approve")
    gate.click(proposal, "U0ADMIN", "reject")
    gate.drain()

    assert gate.proposal(proposal.id).status == "applied"
    [told] = gate.ephemerals_for("U0ADMIN")
    assert "already *approved* by <@U0MARIA>" in told


def test_racing_approvals_count_exactly_one_final_approval(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    results = []

    def approve(user: str) -> None:
        results.append(gate.rt.store.approve(proposal.id, user).final)

    threads = [threading.Thread(target=approve, args=(user,)) for user in ["U0MARIA", "U0ADMIN"] * 10]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count(True) == 1


def test_a_click_by_someone_who_may_not_decide_is_refused_and_changes_nothing(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)

    gate.click(proposal, "U0OTHER", "approve")
    gate.drain()

    assert gate.proposal(proposal.id).status == "awaiting_approval"
    assert gate.hubspot.writes() == []
    [told] = gate.ephemerals_for("U0OTHER")
    assert told == "You may not decide this proposal. Only <@U0MARIA>, <@U0ADMIN> may."
    assert buttons(gate.card(proposal).blocks) != []


def test_a_value_changed_in_hubspot_since_the_card_is_not_overwritten(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.hubspot.set_as_user("deals", "1001", "dealstage", "qualifiedtobuy")

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    assert gate.hubspot.writes() == []
    assert gate.hubspot.get_property("deals", "1001", "dealstage") == "qualifiedtobuy"
    conflicted = gate.proposal(proposal.id)
    assert conflicted.status == "conflict"
    assert conflicted.changes[0].current == "qualifiedtobuy"


def test_the_conflict_card_and_thread_say_what_the_value_is_now(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.hubspot.set_as_user("deals", "1001", "dealstage", "qualifiedtobuy")

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    card = gate.card(proposal)
    expected = "Deal Stage is now *Qualified To Buy* (the card showed Appointment Scheduled)."
    assert buttons(card.blocks) == []
    assert expected in block_text(card.blocks)
    [reply] = gate.thread(proposal)
    assert expected in reply


def test_a_retried_apply_job_does_not_write_again(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    writing.apply_proposal(gate.rt, proposal.id)
    # a worker killed after writing but before recording it: the job runs again from `approved`
    gate.rt.store.transition(proposal.id, allowed=None, to=Status.APPROVED, event="test", actor="test")
    writing.apply_proposal(gate.rt, proposal.id)

    assert len(gate.hubspot.writes()) == 1
    assert gate.proposal(proposal.id).status == "applied"


def test_agent_text_cannot_ping_or_link(gate: Gate) -> None:
    proposal = gate.carded(
        {
            "object_type": "deals",
            "record_id": "1001",
            "changes": {"dealname": "<!channel> see <https://evil.example|docs>"},
            "reason": "<@U0SAM> <!here> & <https://x.example|click>",
        }
    )
    text = block_text(gate.card(proposal).blocks)

    assert "&lt;@U0SAM&gt; &lt;!here&gt; &amp; &lt;https://x.example|click&gt;" in text
    assert "&lt;!channel&gt; see &lt;https://evil.example|docs&gt;" in text
    assert "<!channel>" not in text and "<!here>" not in text and "<@U0SAM>" not in text


def _signed_click_body(gate: Gate) -> str:
    return "payload=" + json.dumps({"type": "block_actions", "user": {"id": "U0MARIA"}, "actions": []})


def test_a_request_with_a_forged_signature_gets_401(gate: Gate) -> None:
    answer = gate.slack.post_signed(_signed_click_body(gate), "application/x-www-form-urlencoded", secret="not-the-secret")

    assert answer.status_code == 401


def test_a_replayed_request_older_than_five_minutes_gets_401(gate: Gate) -> None:
    stale = int(time.time()) - 6 * 60
    answer = gate.slack.post_signed(
        _signed_click_body(gate), "application/x-www-form-urlencoded", timestamp=stale, secret=SIGNING_SECRET
    )

    assert answer.status_code == 401


def test_hubspot_429s_are_retried_and_the_write_lands_once(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.hubspot.fail_next(429, count=2, path_contains="/crm/v3/objects/deals/1001")

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    assert gate.proposal(proposal.id).status == "applied"
    assert len(gate.hubspot.writes()) == 1


def test_a_hubspot_validation_error_fails_the_proposal_with_hubspots_message(gate: Gate) -> None:
    proposal = gate.carded({"object_type": "deals", "record_id": "1001", "changes": {"amount": "60000"}, "reason": "x"})
    gate.hubspot.fail_next(400, path_contains="/crm/v3/objects/deals/1001")
    gate.hubspot.fail_next(400, path_contains="/crm/v3/objects/deals/1001")

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    failed = gate.proposal(proposal.id)
    assert failed.status == "failed"
    assert failed.error == "injected fault"
    assert gate.hubspot.get_property("deals", "1001", "amount") == "50000"
    [reply] = gate.thread(proposal)
    assert "HubSpot refused it (injected fault)" in reply


def test_a_hubspot_outage_keeps_the_approval_for_a_later_retry(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.hubspot.fail_next(503, count=4)

    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    assert gate.proposal(proposal.id).status == "approved"
    assert f"apply_proposal-{proposal.id}-approved" in gate.rt.queue.rq.scheduled_job_registry.get_job_ids()
    assert gate.hubspot.writes() == []


def test_a_hubspot_outage_on_the_last_attempt_fails_the_proposal_without_writing(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.click(proposal, "U0MARIA", "approve")
    gate.hubspot.fail_next(503, count=4)

    writing.apply_proposal(gate.rt, proposal.id, final_attempt=True)

    failed = gate.proposal(proposal.id)
    assert failed.status == "failed"
    assert failed.error == "internal error"
    assert gate.hubspot.writes() == []


def test_card_updates_use_the_dm_channel_id_not_the_user_id(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    assert [call["channel"] for call in gate.slack.calls_to("chat.update")] == ["D0MARIA"]


def test_secrets_never_reach_slack(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    sent = json.dumps([args for _, args in gate.slack.calls])
    for secret in ("pat-test-token", "xoxb-test-token", SIGNING_SECRET, "agent-token-crm"):
        assert secret not in sent


def test_a_slack_rate_limit_on_the_card_is_waited_out_and_the_card_posted_once(gate: Gate) -> None:
    gate.slack.fail_next("chat.postMessage", "ratelimited", count=1, retry_after=1)

    proposal = gate.carded(CLOSE_ACME)

    assert proposal.status == "awaiting_approval"
    assert len(gate.slack.messages("D0MARIA")) == 1


def test_a_card_slack_refuses_ends_failed_on_the_last_attempt(gate: Gate) -> None:
    gate.rt.settings = gate.rt.settings.model_copy(update={"hsgate_fallback_channel": "C0NOWHERE"})
    try:
        answer = gate.propose({"object_type": "deals", "record_id": "1003", "changes": {"dealname": "x"}, "reason": "y"})
        gate.drain()
        queued = gate.proposal(answer.json()["id"])
        preparation.prepare_card(gate.rt, queued.id, final_attempt=True)
    finally:
        gate.rt.settings = gate.rt.settings.model_copy(update={"hsgate_fallback_channel": "C0FALLBACK"})

    assert queued.status == "queued"
    failed = gate.proposal(queued.id)
    assert failed.status == "failed"
    assert failed.error == "Slack refused the card (channel_not_found)"


def test_secrets_never_reach_the_logs_even_at_debug_level(gate: Gate, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gate.hubspot.fail_next(429, count=1, path_contains="/crm/v3/objects/deals/1001")
    proposal = gate.carded(CLOSE_ACME)
    gate.click(proposal, "U0MARIA", "approve")
    gate.drain()

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "HubSpot read failed (429), retrying" in logged
    for secret in ("pat-test-token", "xoxb-test-token", SIGNING_SECRET, "agent-token-crm"):
        assert secret not in logged


def test_a_card_deleted_in_slack_still_gets_its_outcome_recorded_in_the_thread(gate: Gate) -> None:
    proposal = gate.carded(CLOSE_ACME)
    gate.click(proposal, "U0MARIA", "approve")
    gate.slack.fail_next("chat.update", "message_not_found")

    gate.drain()

    assert gate.proposal(proposal.id).status == "applied"
    assert gate.thread(proposal)[0].startswith("Written to HubSpot, approved by <@U0MARIA>")
