"""The `/hsgate` slash command: parse the text, answer the person who typed it."""

from __future__ import annotations

from app.cards import mention
from app.decisions import request_undo
from app.runtime import Runtime

HELP = (
    "*hsgate* puts AI agents' HubSpot changes in front of the record's owner.\n"
    "• `/hsgate status <proposal id>`: where a proposal stands\n"
    "• `/hsgate undo <proposal id>`: write the earlier values back (approver, owner or admin)\n"
    "• `/hsgate help`: this message"
)


def run_command(rt: Runtime, user: str, text: str) -> str:
    words = text.split()
    verb = words[0].lower() if words else "help"
    argument = words[1] if len(words) > 1 else ""
    if verb == "undo" and argument:
        return request_undo(rt, argument, user)
    if verb == "status" and argument:
        return status_line(rt, argument)
    return HELP


def status_line(rt: Runtime, proposal_id: str) -> str:
    proposal = rt.store.get(proposal_id)
    if proposal is None:
        return f"Proposal `{proposal_id}` does not exist."
    by = f" by {mention(proposal.decided_by)}" if proposal.decided_by else ""
    what = ", ".join(change.label for change in proposal.changes) or proposal.action.value
    return f"`{proposal.id}` ({what} on {proposal.object_type} {proposal.record_id}, from {proposal.agent}): *{proposal.status.value}*{by}."
