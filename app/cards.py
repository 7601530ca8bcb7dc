"""Slack messages as pure functions: a proposal in, text and Block Kit blocks out.

Agent text (reason, values, record names) goes through `escape`, so `<!channel>`, `<@U123>` or
`<https://x|click>` in it shows literally instead of pinging or linking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.models import Action, Change, Event, Proposal, Status

APPROVE_ACTION = "hsgate_approve"
REJECT_ACTION = "hsgate_reject"
UNDO_ACTION = "hsgate_undo"
EDIT_ACTION = "hsgate_edit"
DIGEST_LINES_PER_MESSAGE = 40
SECTION_LIMIT = 2900

OBJECT_NOUNS = {"contacts": "Contact", "companies": "Company", "deals": "Deal", "tickets": "Ticket"}


@dataclass(frozen=True)
class Card:
    text: str  # the notification and screen-reader fallback Slack shows for blocks
    blocks: list[dict[str, Any]]


def escape(text: str) -> str:
    """Make text inert in mrkdwn: Slack's control sequences all start with `<`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_date(moment: datetime) -> str:
    """A time every reader sees in their own time zone, with a UTC fallback."""
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def mention(user: str) -> str:
    return f"<@{user}>"


def _section(text: str) -> dict[str, Any]:
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def record_title(proposal: Proposal) -> str:
    noun = OBJECT_NOUNS[proposal.object_type]
    if proposal.record is None:
        return f"{noun} {proposal.record_id}"
    return f"{noun} <{proposal.record.url}|{escape(proposal.record.name)}>"


def _record_name(proposal: Proposal) -> str:
    name = proposal.record.name if proposal.record else proposal.record_id
    return f"{OBJECT_NOUNS[proposal.object_type].lower()} {name}"


def _what(proposal: Proposal) -> list[dict[str, Any]]:
    """The diff: one section per property, or the note or task to be created."""
    if proposal.action is Action.CREATE_NOTE and proposal.note:
        return [_section(f"*New note*\n{escape(proposal.note.body)}")]
    if proposal.action is Action.CREATE_TASK and proposal.task:
        task = proposal.task
        due = f"\nDue {task.due:%-d %b %Y}" if task.due else ""
        return [_section(f"*New task: {escape(task.subject)}*\n{escape(task.body)}{due}")]
    return [_change_section(change) for change in proposal.changes]


def _change_section(change: Change) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": f"*{escape(change.label)}* now\n{escape(change.old_display)}"[:2000]},
            {"type": "mrkdwn", "text": f"*{escape(change.label)}* proposed\n{escape(change.new_display)}"[:2000]},
        ],
    }


def _body(proposal: Proposal) -> list[dict[str, Any]]:
    owner = proposal.record.owner_name if proposal.record else None
    owned = f" · owner {escape(owner)}" if owner else ""
    blocks: list[dict[str, Any]] = [_section(f"*{record_title(proposal)}*{owned}")]
    if proposal.card and proposal.card.fallback_reason:
        blocks.append(_context(f":information_source: Sent here because {escape(proposal.card.fallback_reason)}."))
    blocks += _what(proposal)
    blocks.append(_section(f"*Why:* {escape(proposal.reason)}"))
    if proposal.rules_fired:
        rules = "\n".join(f"• {escape(rule)}" for rule in proposal.rules_fired)
        blocks.append(_context(f":rotating_light: Policy rules that apply:\n{rules}"))
    blocks.append(
        _context(f"Proposed by *{escape(proposal.agent)}* · {slack_date(proposal.created_at)} · proposal `{proposal.id}`")
    )
    return blocks


def approval_card(proposal: Proposal, rivals: list[Proposal] | None = None) -> Card:
    """The card with Approve and Reject, for the people who may decide.

    Other agents' waiting proposals for the same field appear as alternatives, each with its own
    Approve: the approver picks one, and the others end superseded.
    """
    deciders = ", ".join(mention(user) for user in proposal.approvers) or "an hsgate admin"
    progress = ""
    if proposal.approvals_required > 1:
        progress = f" · {len(proposal.approvals)} of {proposal.approvals_required} approvals"
    blocks = (
        _body(proposal)
        + [_alternative(rival) for rival in rivals or []]
        + [
            _context(f"Who may decide: {deciders}{progress}"),
            {
                "type": "actions",
                "block_id": f"decision:{proposal.id}",
                "elements": decision_buttons(proposal),
            },
        ]
    )
    return Card(text=f"Approval needed: {_summary(proposal)}", blocks=blocks)


def _alternative(rival: Proposal) -> dict[str, Any]:
    values = "; ".join(f"{escape(c.label)} → *{escape(c.new_display)}*" for c in rival.changes)
    block = _section(f"*Alternative from {escape(rival.agent)}*: {values}\n_Why:_ {escape(rival.reason)} · `{rival.id}`")
    block["accessory"] = button("Approve this instead", APPROVE_ACTION, rival.id)
    return block


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    element = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id, "value": value}
    return element | ({"style": style} if style else {})


def decision_buttons(proposal: Proposal) -> list[dict[str, Any]]:
    """Approve, Edit (for property changes) and Reject; used on the card and in the Home tab."""
    edit = [button("Edit", EDIT_ACTION, proposal.id)] if proposal.action is Action.UPDATE else []
    return [
        button("Approve", APPROVE_ACTION, proposal.id, "primary"),
        *edit,
        button("Reject", REJECT_ACTION, proposal.id, "danger"),
    ]


def _summary(proposal: Proposal) -> str:
    if proposal.action is Action.CREATE_NOTE:
        what = "a new note"
    elif proposal.action is Action.CREATE_TASK:
        what = "a new task"
    else:
        what = ", ".join(change.label for change in proposal.changes)
    return f"{what} on {_record_name(proposal)} (from {proposal.agent})"


def outcome_card(proposal: Proposal) -> Card:
    """The card once decided (or while the decision is being written): no buttons left."""
    line = _outcome_line(proposal)
    return Card(text=f"{_summary(proposal)}: {proposal.status.value}", blocks=_body(proposal) + [_section(line)])


def _decider(proposal: Proposal) -> str:
    who = mention(proposal.decided_by) if proposal.decided_by else "someone"
    when = f" {slack_date(proposal.decided_at)}" if proposal.decided_at else ""
    return f"{who}{when}"


def _outcome_line(proposal: Proposal) -> str:
    status = proposal.status
    if status is Status.APPROVED:
        return f":hourglass_flowing_sand: *Approved* by {_decider(proposal)}; writing to HubSpot…"
    if status is Status.APPLIED:
        return f":white_check_mark: *Approved* by {_decider(proposal)} and written to HubSpot.{_edited_note(proposal)}"
    if status is Status.REJECTED:
        return f":no_entry_sign: *Rejected* by {_decider(proposal)}. Nothing was written.{_reason(proposal)}"
    if status is Status.CONFLICT:
        return f":warning: *Not written: the value changed in HubSpot.* {_conflict_detail(proposal)}"
    if status is Status.FAILED:
        return f":x: *Failed:* {escape(proposal.error or 'unknown error')}. Nothing was written."
    if status is Status.UNDOING:
        return ":hourglass_flowing_sand: *Undo requested*; writing to HubSpot…"
    if status is Status.UNDONE:
        return ":leftwards_arrow_with_hook: *Undone*: the earlier values are back in HubSpot."
    if status is Status.EXPIRED:
        return ":zzz: *Expired*: nobody decided in time. Nothing was written."
    if status is Status.SUPERSEDED:
        newer = (
            f"<{proposal.superseded_link}|proposal `{proposal.superseded_by}`>"
            if proposal.superseded_link
            else f"proposal `{proposal.superseded_by}`"
        )
        return f":arrows_counterclockwise: *Superseded* by {newer}. Nothing was written."
    return f"Status: {status.value}"


def _reason(proposal: Proposal) -> str:
    return f" Reason: {escape(proposal.reject_reason)}" if proposal.reject_reason else ""


def _edited_note(proposal: Proposal) -> str:
    edited = [c for c in proposal.changes if c.edited is not None]
    return "".join(
        f" {escape(c.label)} was edited: the agent proposed {escape(c.new_display)}, {escape(c.approved_display)} was approved."
        for c in edited
    )


def _conflict_detail(proposal: Proposal) -> str:
    moved = [c for c in proposal.changes if c.current_display]
    return " ".join(
        f"{escape(c.label)} is now *{escape(c.current_display)}* (the card showed {escape(c.old_display)})." for c in moved
    )


def audit_reply(proposal: Proposal, event: Event, in_thread: bool = True) -> Card:
    """The reply that records an outcome: what reached HubSpot, who did it, when.

    Outside a card's thread (an automatic change has no card) it names the record first.
    """
    when = slack_date(event.at)
    who = mention(event.actor) if event.actor.startswith("U") else escape(event.actor)
    kind = event.type
    if kind == "applied":
        text = (
            f"Written to HubSpot, approved by {_decider(proposal)}:\n{_diff_lines(proposal, undo=False)}{_edited_note(proposal)}"
        )
    elif kind == "reapplied":
        text = f"Re-applied by {who} {when}, written to HubSpot again:\n{_diff_lines(proposal, undo=False)}"
    elif kind == "undone":
        text = f"Undone by {who} {when}, written back to HubSpot:\n{_diff_lines(proposal, undo=True)}"
    elif kind == "undo_refused":
        text = f"Undo refused, nothing was written: {escape(event.detail.get('why', ''))}."
    elif kind == "rejected":
        text = f"Rejected by {who} {when}. Nothing was written.{_reason(proposal)}"
    elif kind == "conflict":
        text = f"Not written {when}: {_conflict_detail(proposal)}"
    elif kind == "failed":
        text = f"Not written {when}: HubSpot refused it ({escape(proposal.error or 'unknown error')})."
    elif kind == "expired":
        text = f"Expired {when}: nobody decided in time. Nothing was written."
    elif kind == "superseded":
        text = f"Superseded {when} by proposal `{proposal.superseded_by}`. Nothing was written."
    else:
        text = f"{escape(kind)} by {who} {when}"
    if not in_thread:
        text = f"*{record_title(proposal)}* (`{proposal.id}`): {text}"
    blocks = [_section(text)]
    if undoable(proposal):
        label = "Re-apply" if proposal.status is Status.UNDONE else "Undo"
        blocks.append({"type": "actions", "elements": [button(label, UNDO_ACTION, proposal.id, "danger")]})
    return Card(text=text, blocks=blocks)


def undoable(proposal: Proposal) -> bool:
    """Applied changes can be undone; an undone update can be applied again."""
    return proposal.status is Status.APPLIED or (proposal.status is Status.UNDONE and proposal.action is Action.UPDATE)


def reminder(proposal: Proposal) -> Card:
    waiting = " ".join(mention(user) for user in proposal.approvers) or "Admins"
    expires = f" It expires {slack_date(proposal.expires_at)}." if proposal.expires_at else ""
    return text_only(f"{waiting}: reminder, this proposal still waits for a decision.{expires}")


def escalation_note(target: str) -> Card:
    who = mention(target) if target.startswith(("U", "W")) else f"<#{target}>"
    return text_only(f"Escalated to {who}: nobody has decided yet.")


def text_only(text: str) -> Card:
    """A message reduced to its text: how a thread reply looks once its Undo button is spent."""
    return Card(text=text, blocks=[_section(text)])


def _diff_lines(proposal: Proposal, undo: bool) -> str:
    if proposal.action is not Action.UPDATE:
        made = "archived" if undo else "created"
        kind = "note" if proposal.action is Action.CREATE_NOTE else "task"
        return f"• {kind} {proposal.created_object_id or ''} {made}"
    lines = []
    for change in proposal.changes:
        new = change.approved_display
        before, after = (new, change.old_display) if undo else (change.old_display, new)
        lines.append(f"• {escape(change.label)}: {escape(before)} → {escape(after)}")
    return "\n".join(lines)


def digest_cards(proposals: list[Proposal]) -> list[Card]:
    """What agents applied automatically, each line with an Undo button; split to stay under 50 blocks."""
    cards = []
    for start in range(0, len(proposals), DIGEST_LINES_PER_MESSAGE):
        chunk = proposals[start : start + DIGEST_LINES_PER_MESSAGE]
        heading = f"*Applied automatically by policy* ({len(proposals)} change{'s' if len(proposals) != 1 else ''}):"
        blocks = [_section(heading)] + [_digest_line(proposal) for proposal in chunk]
        cards.append(Card(text=f"hsgate applied {len(proposals)} change(s) from agents to your records", blocks=blocks))
    return cards


def _digest_line(proposal: Proposal) -> dict[str, Any]:
    what = "; ".join(_diff_lines(proposal, undo=False).splitlines()).replace("• ", "")
    line = f"{record_title(proposal)}: {what}\n_{escape(proposal.agent)}: {escape(proposal.reason)}_ · `{proposal.id}`"
    block = _section(line)
    block["accessory"] = button("Undo", UNDO_ACTION, proposal.id, "danger")
    return block
