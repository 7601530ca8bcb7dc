"""Slack views as pure functions: the Edit and Reject dialogs, and the App Home tab."""

from __future__ import annotations

from typing import Any

from app.cards import decision_buttons, escape, record_title
from app.models import Change, Proposal
from app.schema import (
    PIPELINE_PROPERTIES,
    STAGE_PROPERTIES,
    Option,
    Schema,
    parse_moment,
)

EDIT_CALLBACK = "hsgate_edit"
REJECT_CALLBACK = "hsgate_reject"
REASON_BLOCK = "reason"
VALUE_ACTION = "value"
MAX_SELECT_OPTIONS = 100


def _text(text: str, limit: int = 150) -> dict[str, Any]:
    """Plain text cut to Slack's limit for where it goes (150 for labels and hints, 75 for options)."""
    return {"type": "plain_text", "text": text if len(text) <= limit else text[: limit - 1] + "…", "emoji": False}


def edit_block_id(name: str) -> str:
    return f"edit:{name}"


def edit_view(proposal: Proposal, schema: Schema) -> dict[str, Any]:
    """A dialog prefilled with the proposed values, each with the input its property type needs."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{record_title(proposal)}*\n*Why:* {escape(proposal.reason)}"}}
    ]
    for change in proposal.changes:
        blocks.append(
            {
                "type": "input",
                "block_id": edit_block_id(change.property),
                "label": _text(change.label),
                "hint": _text(f"Now: {change.old_display}. Proposed by {proposal.agent}: {change.new_display}."),
                "element": _input(schema, proposal, change),
            }
        )
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK,
        "private_metadata": proposal.id,
        "title": _text("Edit and approve"),
        "submit": _text("Approve"),
        "close": _text("Cancel"),
        "blocks": blocks,
    }


def _options(schema: Schema, proposal: Proposal, change: Change) -> list[Option]:
    """A stage is chosen among the stages of the pipeline the record will be in, by their own labels."""
    if change.property in STAGE_PROPERTIES:
        moved = next((c.approved for c in proposal.changes if c.property in PIPELINE_PROPERTIES), None)
        pipeline = schema.pipeline(moved or (proposal.record.pipeline_id if proposal.record else None))
        if pipeline is not None:
            return [Option(stage.id, stage.label) for stage in pipeline.stages]
    return schema.allowed_values(change.property)


def _input(schema: Schema, proposal: Proposal, change: Change) -> dict[str, Any]:
    prop = schema.properties[change.property]
    if prop.type == "enumeration" and len(options := _options(schema, proposal, change)) <= MAX_SELECT_OPTIONS:
        choices = [{"text": _text(option.label, 75), "value": option.value} for option in options]
        element: dict[str, Any] = {"type": "static_select", "action_id": VALUE_ACTION, "options": choices}
        chosen = next((choice for choice in choices if choice["value"] == change.new), None)
        return element | ({"initial_option": chosen} if chosen else {})
    if prop.type in ("date", "datetime"):
        moment = parse_moment(change.new) if change.new else None
        return {"type": "datepicker", "action_id": VALUE_ACTION} | ({"initial_date": moment.date().isoformat()} if moment else {})
    initial = {"initial_value": change.new[:3000]} if change.new else {}  # Slack refuses an empty initial value
    if prop.type == "number":
        return {"type": "number_input", "action_id": VALUE_ACTION, "is_decimal_allowed": True} | initial
    multiline = prop.field_type in ("textarea", "html")
    return {"type": "plain_text_input", "action_id": VALUE_ACTION, "multiline": multiline} | initial


def read_edit_view(state: dict[str, Any]) -> dict[str, str]:
    """The values the approver submitted, by property name, as HubSpot strings."""
    values: dict[str, str] = {}
    for block_id, actions in state.get("values", {}).items():
        if not block_id.startswith("edit:"):
            continue
        element = actions.get(VALUE_ACTION, {})
        if element.get("type") == "static_select":
            value = (element.get("selected_option") or {}).get("value", "")
        elif element.get("type") == "datepicker":
            value = element.get("selected_date") or ""
        else:
            value = element.get("value") or ""
        values[block_id.removeprefix("edit:")] = value
    return values


def reject_view(proposal: Proposal) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "private_metadata": proposal.id,
        "title": _text("Reject"),
        "submit": _text("Reject"),
        "close": _text("Cancel"),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"Reject the change to *{record_title(proposal)}*? Nothing will be written."},
            },
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": _text("Reason (the agent reads it)"),
                "element": {"type": "plain_text_input", "action_id": VALUE_ACTION, "multiline": True, "max_length": 2000},
            },
        ],
    }


def read_reject_view(state: dict[str, Any]) -> str | None:
    reason = state.get("values", {}).get(REASON_BLOCK, {}).get(VALUE_ACTION, {}).get("value")
    return reason.strip() or None if reason else None


def home_view(pending: list[Proposal], decided: list[Proposal], automatic: list[Proposal]) -> dict[str, Any]:
    """The App Home tab: what awaits me (with the card's buttons), what I decided, what agents applied."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _text("Waiting for your decision")}]
    if not pending:
        blocks.append(_line("Nothing waits for you."))
    for proposal in pending[:20]:
        blocks.append(_line(summary_line(proposal)))
        blocks.append({"type": "actions", "block_id": f"home:{proposal.id}", "elements": decision_buttons(proposal)})
    blocks += [{"type": "divider"}, {"type": "header", "text": _text("Decided by you recently")}]
    blocks += [_line(f"{summary_line(p)} · *{p.status.value}*") for p in decided[:15]] or [_line("Nothing yet.")]
    blocks += [{"type": "divider"}, {"type": "header", "text": _text("Applied automatically to your records")}]
    blocks += [_line(f"{summary_line(p)} · *{p.status.value}*") for p in automatic[:15]] or [_line("Nothing yet.")]
    return {"type": "home", "blocks": blocks}


def _line(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def summary_line(proposal: Proposal) -> str:
    diff = "; ".join(f"{escape(c.label)}: {escape(c.old_display)} → {escape(c.approved_display)}" for c in proposal.changes)
    what = diff or ("new note" if proposal.note else "new task")
    return f"{record_title(proposal)}: {what} _({escape(proposal.agent)})_ · `{proposal.id}`"
