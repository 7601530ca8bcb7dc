"""The `/hsgate` slash command: parse the text, answer the person who typed it."""

from __future__ import annotations

import re

from app.cards import mention, slack_date
from app.decisions import request_undo
from app.home import pending_for
from app.hubspot import OBJECT_TYPE_IDS
from app.models import OBJECT_TYPES, Proposal
from app.runtime import Runtime
from app.views import summary_line

HELP = (
    "*hsgate* puts AI agents' HubSpot changes in front of the record's owner.\n"
    "• `/hsgate pending`: what waits for your decision\n"
    "• `/hsgate status <proposal id>`: where a proposal stands\n"
    "• `/hsgate history <HubSpot record URL, or type/id like deals/1001>`: every proposal for a record\n"
    "• `/hsgate undo <proposal id>`: write the earlier values back, or undo an undo (approver, owner or admin)\n"
    "• `/hsgate help`: this message"
)
LISTED = 20
_RECORD_URL = re.compile(r"/record/(0-\d+)/(\d+)")
_TYPE_AND_ID = re.compile(r"^([a-z]+)[/ ](\d+)$")
_TYPES_BY_ID = {type_id: name for name, type_id in OBJECT_TYPE_IDS.items()}


def run_command(rt: Runtime, user: str, text: str) -> str:
    verb, _, argument = text.strip().partition(" ")
    verb, argument = verb.lower(), argument.strip().strip("<>")
    if verb == "undo" and argument:
        return request_undo(rt, argument, user)
    if verb == "status" and argument:
        return status_line(rt, argument)
    if verb == "pending":
        return pending(rt, user)
    if verb == "history" and argument:
        return history(rt, argument)
    return HELP


def status_line(rt: Runtime, proposal_id: str) -> str:
    proposal = rt.store.get(proposal_id)
    if proposal is None:
        return f"Proposal `{proposal_id}` does not exist."
    by = f" by {mention(proposal.decided_by)}" if proposal.decided_by else ""
    what = ", ".join(change.label for change in proposal.changes) or proposal.action.value
    subject = f"{what} on {proposal.object_type} {proposal.record_id}, from {proposal.agent}"
    return f"`{proposal.id}` ({subject}): *{proposal.status.value}*{by}."


def pending(rt: Runtime, user: str) -> str:
    waiting = pending_for(rt, user)
    if not waiting:
        return "Nothing waits for your decision."
    lines = [f"• {summary_line(proposal)}" for proposal in waiting[:LISTED]]
    more = f"\n…and {len(waiting) - LISTED} more." if len(waiting) > LISTED else ""
    return f"*{len(waiting)} waiting for your decision:*\n" + "\n".join(lines) + more


def parse_record(text: str) -> tuple[str, str] | None:
    """`https://app.hubspot.com/contacts/123/record/0-3/1001`, `deals/1001` or `deals 1001`."""
    if found := _RECORD_URL.search(text):
        object_type = _TYPES_BY_ID.get(found.group(1))
        return (object_type, found.group(2)) if object_type else None
    if (found := _TYPE_AND_ID.match(text.lower())) and found.group(1) in OBJECT_TYPES:
        return found.group(1), found.group(2)
    return None


def history(rt: Runtime, text: str) -> str:
    record = parse_record(text)
    if record is None:
        return f"Give a HubSpot record URL or a type and id, like `deals/1001` (types: {', '.join(OBJECT_TYPES)})."
    proposals = [p for p in rt.store.get_many(rt.store.ids_for_record(*record)) if p is not None]
    if not proposals:
        return f"No proposals for {record[0]} {record[1]}."
    lines = [_history_line(proposal) for proposal in reversed(proposals[-LISTED:])]
    return f"*Proposals for {record[0]} {record[1]}* (newest first):\n" + "\n".join(lines)


def _history_line(proposal: Proposal) -> str:
    by = f" by {mention(proposal.decided_by)}" if proposal.decided_by else ""
    return f"• {slack_date(proposal.created_at)} *{proposal.status.value}*{by}: {summary_line(proposal)}"
