"""The policy: reading hsgate.toml strictly, tiers, rules, agent scopes, check() and explain()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.models import Action, Change, NoteIn, Proposal, Tier
from app.policy import DEFAULT_POLICY_PATH, AgentScope, Policy, PolicyError, parse_duration
from app.schema import Option, Owner, Pipeline, PropertyDef, Schema, Stage
from app.validation import Problem

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LIFECYCLE = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
OWNERS = {
    "1001": Owner("1001", "maria@example.com", "Maria", "Lopez"),
    "1002": Owner("1002", "sam@example.com", "Sam", "Okafor"),
}
STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin", "contractsent")


def deals_schema() -> Schema:
    stages = tuple(Stage(s, s.title(), order, False) for order, s in enumerate(STAGES)) + (
        Stage("closedwon", "Closed Won", 5, True),
        Stage("closedlost", "Closed Lost", 6, True),
    )
    renewals = (Stage("renewalopen", "Renewal Open", 0, False), Stage("renewalwon", "Renewal Won", 1, True))
    properties = (
        PropertyDef("dealname", "Deal Name", "string"),
        PropertyDef("amount", "Amount", "number", "number"),
        PropertyDef("dealstage", "Deal Stage", "enumeration", "radio", external_options=True),
        PropertyDef("pipeline", "Pipeline", "enumeration", "select", external_options=True),
        PropertyDef("closedate", "Close Date", "datetime", "date"),
        PropertyDef("description", "Deal Description", "string", "textarea"),
        PropertyDef("hubspot_owner_id", "Owner", "enumeration", "select", external_options=True),
        PropertyDef("days_to_close", "Days to Close", "number", "number", calculated=True),
        PropertyDef("hs_object_id", "Record ID", "number", "number", read_only=True),
    )
    return Schema(
        "deals",
        {p.name: p for p in properties},
        (Pipeline("default", "Sales Pipeline", stages), Pipeline("renewals", "Renewals", renewals)),
        OWNERS,
    )


def contacts_schema() -> Schema:
    options = tuple(Option(value, value.title()) for value in LIFECYCLE)
    properties = (
        PropertyDef("email", "Email", "string"),
        PropertyDef("jobtitle", "Job Title", "string"),
        PropertyDef("phone", "Phone Number", "string"),
        PropertyDef("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options),
        PropertyDef("hubspot_owner_id", "Owner", "enumeration", "select", external_options=True),
        PropertyDef("num_notes", "Number of Sales Activities", "number", "number", calculated=True),
    )
    return Schema("contacts", {p.name: p for p in properties}, (), OWNERS)


def proposal(object_type: str = "deals", **changes: tuple[str | None, str]) -> Proposal:
    """An update proposal; each keyword is property=(old, new)."""
    return Proposal(
        id="p1",
        agent="crm-bot",
        action=Action.UPDATE,
        object_type=object_type,  # type: ignore[arg-type]
        record_id="1001",
        changes=[Change(property=name, label=name, old=old, new=new) for name, (old, new) in changes.items()],
        reason="test",
        created_at=NOW,
    )


def note_proposal() -> Proposal:
    return Proposal(
        id="p2", agent="crm-bot", action=Action.CREATE_NOTE, object_type="deals", record_id="1001",
        note=NoteIn(body="Called them"), reason="test", created_at=NOW,
    )  # fmt: skip


def policy(text: str) -> Policy:
    return Policy.parse(text, "hsgate.toml")


def rule_policy(rule: str) -> Policy:
    """Everything auto, so a rule's effect shows on its own."""
    return policy(f'[tiers]\ndefault = "auto"\n\n[[rules]]\n{rule}\n')


def error_of(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        policy(text)
    return str(caught.value)


# ---------------------------------------------------------------- parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3s", timedelta(seconds=3)), ("15m", timedelta(minutes=15)), ("24h", timedelta(hours=24)), ("2d", timedelta(days=2))],
)
def test_parse_duration_reads_each_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "1.5h", "3 days", "2w", "-1h", "0h"])
def test_parse_duration_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# ---------------------------------------------------------------- tiers


TIERS = """
[tiers]
default = "block"
deals = { amount = "auto", description = "review" }
contacts = "auto"
notes = "review"
tasks = "block"
"""


def test_property_tier_comes_from_the_property_entry() -> None:
    assert policy(TIERS).property_tier("deals", "amount") is Tier.AUTO


def test_property_tier_comes_from_a_whole_object_type_entry() -> None:
    assert policy(TIERS).property_tier("contacts", "jobtitle") is Tier.AUTO


def test_property_tier_falls_back_to_the_default() -> None:
    assert policy(TIERS).property_tier("deals", "dealname") is Tier.BLOCK


def test_default_tier_is_review_when_not_written() -> None:
    assert policy("").property_tier("deals", "dealname") is Tier.REVIEW


def test_read_only_property_is_block_whatever_the_tiers_say() -> None:
    assert (
        policy('[tiers]\ndeals = { hs_object_id = "auto" }').property_tier("deals", "hs_object_id", deals_schema()) is Tier.BLOCK
    )


def test_calculated_property_is_block_whatever_the_tiers_say() -> None:
    assert policy('[tiers]\ndeals = "auto"').property_tier("deals", "days_to_close", deals_schema()) is Tier.BLOCK


def test_update_takes_the_strictest_property_tier() -> None:
    assert policy(TIERS).base_tier("deals", Action.UPDATE, ["amount", "description"]) is Tier.REVIEW


def test_create_note_uses_the_notes_tier() -> None:
    assert policy(TIERS).base_tier("deals", Action.CREATE_NOTE, []) is Tier.REVIEW


def test_create_task_uses_the_tasks_tier() -> None:
    assert policy(TIERS).base_tier("deals", Action.CREATE_TASK, []) is Tier.BLOCK


def test_create_note_falls_back_to_the_default_tier() -> None:
    assert policy('[tiers]\ndefault = "auto"').base_tier("deals", Action.CREATE_NOTE, []) is Tier.AUTO


def test_blocked_names_the_policy_entry_for_each_blocked_property() -> None:
    problems = policy('[tiers]\ndeals = { amount = "block" }').blocked("deals", Action.UPDATE, ["amount", "dealname"])
    assert problems == [
        Problem(
            "changes.amount",
            "deals property 'amount' is blocked: policy hsgate.toml [tiers] deals.amount = \"block\". "
            "A proposal changing it will never be accepted; leave it out of `changes`.",
        )
    ]


def test_blocked_names_read_only_properties() -> None:
    problems = policy("").blocked("deals", Action.UPDATE, ["hs_object_id"], deals_schema())
    assert [(p.field, "read-only in HubSpot" in p.message) for p in problems] == [("changes.hs_object_id", True)]


def test_blocked_action_is_reported_on_the_action_field() -> None:
    problems = policy('[tiers]\nnotes = "block"').blocked("deals", Action.CREATE_NOTE, [])
    assert problems == [
        Problem(
            "action",
            'create_note on deals is blocked by policy hsgate.toml [tiers] notes = "block"; '
            "such a proposal will never be accepted.",
        )
    ]


def test_blocked_is_empty_when_nothing_is_blocked() -> None:
    assert policy(TIERS).blocked("deals", Action.UPDATE, ["amount", "description"]) == []


# ---------------------------------------------------------------- rules


def test_stage_backward_fires_on_an_earlier_stage() -> None:
    assessment = rule_policy('when = "stage_backward"\ntier = "review"').assess(
        proposal(dealstage=("contractsent", "qualifiedtobuy")), deals_schema(), NOW
    )
    assert assessment.tier is Tier.REVIEW
    assert assessment.fired == (
        "stage_backward: Deal Stage moves back from Contractsent to Qualifiedtobuy in Sales Pipeline (tier review)",
    )


def test_stage_backward_does_not_fire_on_a_later_stage() -> None:
    assessment = rule_policy('when = "stage_backward"\ntier = "review"').assess(
        proposal(dealstage=("qualifiedtobuy", "contractsent")), deals_schema(), NOW
    )
    assert (assessment.tier, assessment.fired) == (Tier.AUTO, ())


def test_stage_backward_does_not_fire_across_pipelines() -> None:
    assessment = rule_policy('when = "stage_backward"\ntier = "review"').assess(
        proposal(dealstage=("contractsent", "renewalopen")), deals_schema(), NOW
    )
    assert assessment.fired == ()


def test_closed_stage_fires_on_a_closed_stage() -> None:
    assessment = rule_policy('when = "closed_stage"\ntier = "block"').assess(
        proposal(dealstage=("contractsent", "closedwon")), deals_schema(), NOW
    )
    assert (assessment.tier, assessment.fired) == (
        Tier.BLOCK,
        ("closed_stage: Deal Stage moves to Closed Won, a closed stage (tier block)",),
    )


def test_closed_stage_does_not_fire_on_an_open_stage() -> None:
    assessment = rule_policy('when = "closed_stage"\ntier = "block"').assess(
        proposal(dealstage=("qualifiedtobuy", "contractsent")), deals_schema(), NOW
    )
    assert assessment.fired == ()


def test_date_shift_days_fires_beyond_the_limit() -> None:
    assessment = rule_policy('when = "date_shift_days"\nvalue = 30\ntier = "review"').assess(
        proposal(closedate=("2026-12-15T00:00:00Z", "2027-01-29")), deals_schema(), NOW
    )
    assert assessment.fired == (
        "date_shift_days: Close Date moves 45 days, from 15 Dec 2026 to 29 Jan 2027 (more than 30) (tier review)",
    )


def test_date_shift_days_does_not_fire_within_the_limit() -> None:
    assessment = rule_policy('when = "date_shift_days"\nvalue = 30\ntier = "review"').assess(
        proposal(closedate=("2026-12-15T00:00:00Z", "2027-01-14")), deals_schema(), NOW
    )
    assert assessment.fired == ()


def test_date_shift_days_watches_the_named_property() -> None:
    rules = rule_policy('when = "date_shift_days"\nproperty = "hs_next_step_date"\nvalue = 1\ntier = "review"')
    assessment = rules.assess(proposal(closedate=("2026-12-15", "2027-06-01")), deals_schema(), NOW)
    assert assessment.fired == ()


def test_date_in_past_fires_before_today() -> None:
    assessment = rule_policy('when = "date_in_past"\ntier = "review"').assess(
        proposal(closedate=("2026-12-15T00:00:00Z", "2026-11-26")), deals_schema(), NOW
    )
    assert assessment.fired == ("date_in_past: Close Date 26 Nov 2026 is before today (27 Nov 2026) (tier review)",)


def test_date_in_past_does_not_fire_for_today() -> None:
    assessment = rule_policy('when = "date_in_past"\ntier = "review"').assess(
        proposal(closedate=("2026-12-15T00:00:00Z", "2026-11-27")), deals_schema(), NOW
    )
    assert assessment.fired == ()


def test_amount_change_pct_fires_beyond_the_percentage() -> None:
    assessment = rule_policy('when = "amount_change_pct"\nvalue = 25\ntier = "review"').assess(
        proposal(amount=("50000", "70000")), deals_schema(), NOW
    )
    assert assessment.fired == ("amount_change_pct: Amount changes by 40% from 50,000 to 70,000 (more than 25%) (tier review)",)


def test_amount_change_pct_does_not_fire_within_the_percentage() -> None:
    assessment = rule_policy('when = "amount_change_pct"\nvalue = 25\ntier = "review"').assess(
        proposal(amount=("50000", "62500")), deals_schema(), NOW
    )
    assert assessment.fired == ()


@pytest.mark.parametrize("old", [None, "", "0"])
def test_amount_change_pct_fires_when_the_old_amount_is_empty_or_zero(old: str | None) -> None:
    assessment = rule_policy('when = "amount_change_pct"\nvalue = 25\ntier = "review"').assess(
        proposal(amount=(old, "10")), deals_schema(), NOW
    )
    assert assessment.tier is Tier.REVIEW


def test_amount_above_fires_above_the_value() -> None:
    assessment = rule_policy('when = "amount_above"\nvalue = 100000\napprovals = 2').assess(
        proposal(amount=("50000", "150000")), deals_schema(), NOW
    )
    assert assessment.fired == ("amount_above: Amount 150,000 is above 100,000 (needs 2 approvals)",)


def test_amount_above_does_not_fire_at_the_value() -> None:
    assessment = rule_policy('when = "amount_above"\nvalue = 100000\napprovals = 2').assess(
        proposal(amount=("50000", "100000")), deals_schema(), NOW
    )
    assert (assessment.tier, assessment.approvals, assessment.fired) == (Tier.AUTO, 1, ())


def test_two_approvals_make_an_auto_change_review() -> None:
    assessment = rule_policy('when = "amount_above"\nvalue = 100000\napprovals = 2').assess(
        proposal(amount=("50000", "150000")), deals_schema(), NOW
    )
    assert (assessment.tier, assessment.approvals) == (Tier.REVIEW, 2)


def test_lifecycle_backward_fires_on_an_earlier_stage() -> None:
    assessment = rule_policy('when = "lifecycle_backward"\ntier = "review"').assess(
        proposal("contacts", lifecyclestage=("customer", "lead")), contacts_schema(), NOW
    )
    assert assessment.fired == ("lifecycle_backward: Lifecycle Stage moves back from Customer to Lead (tier review)",)


def test_lifecycle_backward_does_not_fire_on_a_later_stage() -> None:
    assessment = rule_policy('when = "lifecycle_backward"\ntier = "review"').assess(
        proposal("contacts", lifecyclestage=("lead", "customer")), contacts_schema(), NOW
    )
    assert assessment.fired == ()


def test_owner_change_fires_on_a_new_owner() -> None:
    assessment = rule_policy('when = "owner_change"\ntier = "review"').assess(
        proposal(hubspot_owner_id=("1001", "1002")), deals_schema(), NOW
    )
    assert assessment.fired == ("owner_change: Owner changes from Maria Lopez to Sam Okafor (tier review)",)


def test_owner_change_does_not_fire_when_the_owner_stays() -> None:
    assessment = rule_policy('when = "owner_change"\ntier = "review"').assess(
        proposal(hubspot_owner_id=("1001", "1001")), deals_schema(), NOW
    )
    assert assessment.fired == ()


def test_rule_for_another_object_type_does_not_fire() -> None:
    assessment = rule_policy('when = "owner_change"\nobject = "contacts"\ntier = "review"').assess(
        proposal(hubspot_owner_id=("1001", "1002")), deals_schema(), NOW
    )
    assert assessment.fired == ()


def test_rules_only_raise_the_tier() -> None:
    text = '[tiers]\ndefault = "block"\n\n[[rules]]\nwhen = "owner_change"\ntier = "review"\n'
    assessment = policy(text).assess(proposal(hubspot_owner_id=("1001", "1002")), deals_schema(), NOW)
    assert (assessment.tier, assessment.approvals) == (Tier.BLOCK, 1)


def test_the_most_approvals_of_the_fired_rules_are_needed() -> None:
    text = (
        '[tiers]\ndefault = "review"\n\n[[rules]]\nwhen = "amount_above"\nvalue = 10\napprovals = 3\n\n'
        '[[rules]]\nwhen = "amount_above"\nvalue = 100\napprovals = 2\n'
    )
    assessment = policy(text).assess(proposal(amount=("50", "500")), deals_schema(), NOW)
    assert (assessment.tier, assessment.approvals, len(assessment.fired)) == (Tier.REVIEW, 3, 2)


# ---------------------------------------------------------------- agent scopes


SCOPED = '[agents.enricher]\nobjects = ["contacts"]\nproperties = ["jobtitle", "phone"]\n'


def test_agent_outside_its_objects_is_refused() -> None:
    problems = policy(SCOPED).scope_problems("enricher", "deals", Action.CREATE_NOTE, [])
    assert problems == [
        Problem(
            "object_type",
            "agent 'enricher' may not propose changes to deals; its scope "
            "(policy hsgate.toml [agents.enricher] objects) allows only: contacts.",
            ["contacts"],
        )
    ]


def test_agent_outside_its_properties_is_refused_per_property() -> None:
    problems = policy(SCOPED).scope_problems("enricher", "contacts", Action.UPDATE, ["jobtitle", "email"])
    assert [(p.field, p.allowed) for p in problems] == [("changes.email", ["jobtitle", "phone"])]


def test_properties_scope_does_not_limit_notes() -> None:
    assert policy(SCOPED).scope_problems("enricher", "contacts", Action.CREATE_NOTE, []) == []


def test_agent_not_listed_may_propose_anything() -> None:
    assert policy(SCOPED).scope_problems("crm-bot", "deals", Action.UPDATE, ["amount"]) == []


def test_agent_scope_is_read() -> None:
    assert policy(SCOPED).agent_scopes == {"enricher": AgentScope(("contacts",), ("jobtitle", "phone"))}


# ---------------------------------------------------------------- the default policy


def test_default_policy_gates_the_seed_fields() -> None:
    default = Policy.load(None)
    deals, contacts = deals_schema(), contacts_schema()
    tiers = {
        name: default.property_tier("deals", name, deals)
        for name in ("dealstage", "closedate", "pipeline", "hubspot_owner_id", "amount", "dealname", "description")
    } | {name: default.property_tier("contacts", name, contacts) for name in ("lifecyclestage", "jobtitle", "phone", "email")}
    assert tiers == {
        "dealstage": Tier.REVIEW, "closedate": Tier.REVIEW, "pipeline": Tier.REVIEW, "hubspot_owner_id": Tier.REVIEW,
        "amount": Tier.REVIEW, "dealname": Tier.REVIEW, "description": Tier.AUTO,
        "lifecyclestage": Tier.REVIEW, "jobtitle": Tier.AUTO, "phone": Tier.AUTO, "email": Tier.REVIEW,
    }  # fmt: skip


def test_default_policy_lets_notes_and_tasks_through() -> None:
    default = Policy.load(None)
    assert [default.base_tier("deals", action, []) for action in (Action.CREATE_NOTE, Action.CREATE_TASK)] == [
        Tier.AUTO,
        Tier.AUTO,
    ]


def test_default_policy_rules() -> None:
    rules = [(r.when, r.object, r.tier, r.approvals, r.value) for r in Policy.load(DEFAULT_POLICY_PATH).rules]
    assert rules == [
        ("stage_backward", None, Tier.REVIEW, None, None),
        ("closed_stage", None, Tier.REVIEW, None, None),
        ("date_in_past", "deals", Tier.REVIEW, None, None),
        ("date_shift_days", "deals", Tier.REVIEW, None, 30),
        ("amount_change_pct", "deals", Tier.REVIEW, None, 25),
        ("amount_above", "deals", None, 2, 100000),
        ("lifecycle_backward", None, Tier.REVIEW, None, None),
        ("owner_change", None, Tier.REVIEW, None, None),
    ]


def test_default_policy_routing_and_lifecycle() -> None:
    default = Policy.load(None)
    assert (default.fallback_channel, default.owner_channels, default.pipeline_channels, default.admins, default.delegates) == (
        None, {}, {}, (), {},
    )  # fmt: skip
    assert (default.digest_period, default.expire_after, default.remind_after, default.escalate_to) == (
        timedelta(hours=1), timedelta(hours=72), timedelta(hours=24), None,
    )  # fmt: skip


def test_default_policy_asks_two_approvals_for_a_large_deal() -> None:
    assessment = Policy.load(None).assess(proposal(amount=("50000", "150000")), deals_schema(), NOW)
    assert (assessment.tier, assessment.approvals) == (Tier.REVIEW, 2)


def test_default_policy_passes_check_against_the_seed_schemas() -> None:
    lines = DEFAULT_POLICY_PATH.read_text().splitlines()
    companies, tickets = (
        next(n for n, line in enumerate(lines, 1) if line.startswith(f"{t} = ")) for t in ("companies", "tickets")
    )
    assert Policy.load(None).check({"deals": deals_schema(), "contacts": contacts_schema()}) == [
        f"default_policy.toml line {companies}: [tiers].companies: HubSpot returned no schema for object type 'companies'",
        f"default_policy.toml line {tickets}: [tiers].tickets: HubSpot returned no schema for object type 'tickets'",
    ]


# ---------------------------------------------------------------- the whole file


FULL = """\
[tiers]
default = "review"

[[rules]]
when = "amount_above"
object = "deals"
value = 100000
approvals = 2

[routing]
fallback_channel = "C0FALLBACK"
owners = { "1001" = "C0SALESEU" }
pipelines = { "default" = "C0DEALS" }

[approvers]
admins = ["U0ADMIN"]
delegates = { "1001" = ["U0DEPUTY"] }

[digest]
period = "15m"

[lifecycle]
expire_after = "2d"
remind_after = "6h"
escalate_to = "C0BACKUP"
"""


def test_routing_approvers_and_lifecycle_are_read() -> None:
    read = policy(FULL)
    assert (read.fallback_channel, read.owner_channels, read.pipeline_channels) == (
        "C0FALLBACK", {"1001": "C0SALESEU"}, {"default": "C0DEALS"},
    )  # fmt: skip
    assert (read.admins, read.delegates) == (("U0ADMIN",), {"1001": ("U0DEPUTY",)})
    assert (read.digest_period, read.expire_after, read.remind_after, read.escalate_to) == (
        timedelta(minutes=15), timedelta(days=2), timedelta(hours=6), "C0BACKUP",
    )  # fmt: skip


def test_rule_remembers_its_line() -> None:
    assert policy(FULL).rules[0].line == 4


# ---------------------------------------------------------------- errors


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.load(tmp_path / "hsgate.toml")
    assert str(caught.value) == f"{tmp_path / 'hsgate.toml'}: no such policy file"


def test_syntax_error_names_its_line() -> None:
    assert error_of('[tiers]\ndefault = "review"\ndeals = {\n') == (
        "hsgate.toml line 3: invalid TOML: Invalid initial character for a key part"
    )


def test_unknown_tier_names_its_line() -> None:
    text = '[tiers]\ndefault = "review"\ndeals = { dealstage = "reveiw" }\n'
    assert error_of(text) == (
        "hsgate.toml line 3: [tiers].deals.dealstage: 'reveiw' is not a tier; tiers are: auto, review, block"
    )


def test_unknown_object_type_in_tiers_names_its_line() -> None:
    assert error_of('[tiers]\n\ndeal = "auto"\n').startswith("hsgate.toml line 3: [tiers].deal: 'deal' is not an object type;")


def test_unknown_rule_names_its_line() -> None:
    text = (
        '[tiers]\ndefault = "review"\n\n[[rules]]\nwhen = "stage_backward"\ntier = "review"\n\n'
        '[[rules]]\nobject = "deals"\nwhen = "amount_abov"\nvalue = 100000\n'
    )
    assert error_of(text) == (
        "hsgate.toml line 10: rules[1].when: 'amount_abov' is not a rule; rules are: stage_backward, closed_stage, "
        "date_shift_days, date_in_past, amount_change_pct, amount_above, lifecycle_backward, owner_change"
    )


def test_unknown_rule_key_names_its_line() -> None:
    text = '[[rules]]\nwhen = "amount_above"\nvalue = 100000\napproval = 2\n'
    assert error_of(text) == (
        "hsgate.toml line 4: rules[0].approval: 'approval' is not a rule key; "
        "keys are: when, object, tier, approvals, value, property"
    )


def test_unknown_section_names_its_line() -> None:
    assert error_of('[tiers]\n\n[rule]\nwhen = "x"\n').startswith(
        "hsgate.toml line 3: [rule]: 'rule' is not a policy section; sections are: tiers, rules,"
    )


def test_unknown_key_in_a_section_names_its_line() -> None:
    assert error_of('[lifecycle]\nexpire_after = "72h"\nremind_afer = "24h"\n') == (
        "hsgate.toml line 3: [lifecycle].remind_afer: 'remind_afer' is not a key of [lifecycle]; "
        "keys are: expire_after, remind_after, escalate_to"
    )


def test_bad_duration_names_its_line() -> None:
    assert error_of('[digest]\n\nperiod = "1 hour"\n') == (
        "hsgate.toml line 3: [digest].period: '1 hour' is not a duration; "
        'write a whole number and a unit s, m, h or d, like "24h"'
    )


def test_approvals_zero_names_its_line() -> None:
    assert error_of('[[rules]]\nwhen = "owner_change"\napprovals = 0\n') == (
        "hsgate.toml line 3: rules[0].approvals: must be a whole number of at least 1, not 0"
    )


def test_rule_without_tier_or_approvals_is_an_error() -> None:
    assert error_of('[tiers]\n\n[[rules]]\nwhen = "owner_change"\n') == (
        "hsgate.toml line 3: rules[0]: needs `tier` or `approvals` (or both)"
    )


def test_rule_without_its_value_is_an_error() -> None:
    assert error_of('[[rules]]\nwhen = "amount_above"\ntier = "review"\n') == (
        "hsgate.toml line 2: rules[0].value: amount_above needs a value (amount)"
    )


def test_rule_on_an_object_it_cannot_apply_to_is_an_error() -> None:
    assert error_of('[[rules]]\nwhen = "stage_backward"\nobject = "contacts"\ntier = "review"\n') == (
        "hsgate.toml line 3: rules[0].object: stage_backward applies to deals, tickets, not 'contacts'"
    )


def test_agent_scope_with_an_unknown_object_type_is_an_error() -> None:
    assert error_of('[agents.enricher]\nobjects = ["contact"]\n').startswith(
        "hsgate.toml line 2: [agents.enricher].objects: 'contact' is not an object type;"
    )


def test_reminder_after_expiry_is_an_error() -> None:
    assert error_of('[lifecycle]\nexpire_after = "1h"\nremind_after = "2h"\n') == (
        "hsgate.toml line 3: [lifecycle].remind_after: must be shorter than expire_after"
    )


# ---------------------------------------------------------------- check()


def test_check_finds_unknown_tier_properties() -> None:
    text = '[tiers]\ndefault = "review"\n\n\ndeals = { dealstag = "review" }\n'
    assert policy(text).check({"deals": deals_schema()}) == [
        "hsgate.toml line 5: [tiers].deals: deals have no property 'dealstag'"
    ]


def test_check_finds_unknown_object_types() -> None:
    assert policy('[tiers]\ntickets = "auto"\n').check({"deals": deals_schema()}) == [
        "hsgate.toml line 2: [tiers].tickets: HubSpot returned no schema for object type 'tickets'"
    ]


def test_check_finds_tiers_on_calculated_properties() -> None:
    assert policy('[tiers]\ndeals = { days_to_close = "auto" }\n').check({"deals": deals_schema()}) == [
        "hsgate.toml line 2: [tiers].deals: deals property 'days_to_close' is calculated by HubSpot, so it is always block"
    ]


def test_check_finds_unknown_scope_properties() -> None:
    text = '[agents.enricher]\nobjects = ["contacts"]\nproperties = ["jobtitle", "phon"]\n'
    assert policy(text).check({"deals": deals_schema(), "contacts": contacts_schema()}) == [
        "hsgate.toml line 3: [agents.enricher].properties: contacts have no property 'phon'"
    ]


def test_check_finds_unknown_routing_pipelines() -> None:
    text = '[routing]\npipelines = { "default" = "C0DEALS", "defualt" = "C0X" }\n'
    assert policy(text).check({"deals": deals_schema()}) == [
        "hsgate.toml line 2: [routing].pipelines: HubSpot has no pipeline 'defualt'"
    ]


def test_check_finds_unknown_owners() -> None:
    text = '[routing]\nowners = { "1001" = "C0EU" }\n\n[approvers]\ndelegates = { "1009" = ["U0DEPUTY"] }\n'
    assert policy(text).check({"deals": deals_schema()}) == [
        "hsgate.toml line 5: [approvers].delegates: HubSpot has no owner '1009'"
    ]


def test_check_finds_unknown_rule_properties() -> None:
    text = '[[rules]]\nwhen = "date_in_past"\nobject = "deals"\nproperty = "closdate"\ntier = "review"\n'
    assert policy(text).check({"deals": deals_schema()}) == [
        "hsgate.toml line 4: rules[0].property: deals have no property 'closdate'"
    ]


def test_check_finds_rule_properties_of_the_wrong_type() -> None:
    text = '[[rules]]\nwhen = "amount_above"\nproperty = "closedate"\nvalue = 5\ntier = "review"\n'
    assert policy(text).check({"deals": deals_schema(), "contacts": contacts_schema()}) == [
        "hsgate.toml line 3: rules[0].property: deals property 'closedate' is a datetime; amount_above needs a number"
    ]


def test_check_is_empty_for_a_clean_policy() -> None:
    assert policy(FULL).check({"deals": deals_schema(), "contacts": contacts_schema()}) == []


# ---------------------------------------------------------------- explain()


def test_explain_shows_tiers_fired_rules_and_result() -> None:
    default = Policy.load(None)
    pct, above = (next(r.line for r in default.rules if r.when == when) for when in ("amount_change_pct", "amount_above"))
    text = default.explain(proposal(amount=("50000", "150000"), description=("", "Bigger scope")), deals_schema(), NOW)
    assert text.splitlines() == [
        "Proposal p1: update deals 1001 by agent crm-bot",
        "Policy: default_policy.toml",
        "Base tier:",
        '  amount (Amount): review, policy default_policy.toml [tiers] default = "review"',
        '  description (Deal Description): auto, policy default_policy.toml [tiers] deals.description = "auto"',
        "Rules fired:",
        f"  amount_change_pct (line {pct}): Amount changes by 200% from 50,000 to 150,000 (more than 25%) (tier review)",
        f"  amount_above (line {above}): Amount 150,000 is above 100,000 (needs 2 approvals)",
        "Result: review, 2 approvals",
    ]


def test_explain_says_when_no_rule_fires() -> None:
    text = Policy.load(None).explain(note_proposal(), deals_schema(), NOW)
    assert text.splitlines()[3:] == [
        '  create_note: auto, policy default_policy.toml [tiers] notes = "auto"',
        "Rules fired: none",
        "Result: auto, 1 approval",
    ]
