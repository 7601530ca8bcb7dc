"""What a proposal is: the agents' request body and the stored record of its life."""

from __future__ import annotations

import builtins
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

OBJECT_TYPES: tuple[str, ...] = ("contacts", "companies", "deals", "tickets")
HSGATE = "hsgate"  # the actor of events hsgate itself causes
ObjectType = Literal["contacts", "companies", "deals", "tickets"]


class Status(StrEnum):
    QUEUED = "queued"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"  # approved, the write is on its way
    APPLIED = "applied"
    REJECTED = "rejected"
    CONFLICT = "conflict"
    FAILED = "failed"
    UNDOING = "undoing"  # undo (or redo) requested, the write is on its way
    UNDONE = "undone"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


class Action(StrEnum):
    UPDATE = "update"
    CREATE_NOTE = "create_note"
    CREATE_TASK = "create_task"


class Tier(StrEnum):
    AUTO = "auto"
    REVIEW = "review"
    BLOCK = "block"


PropertyValue = str | int | float | bool | None
RecordId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: Annotated[str, StringConstraints(min_length=1, max_length=65_000)]


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    body: Annotated[str, StringConstraints(max_length=65_000)] = ""
    due: date | None = None
    owner_id: RecordId | None = None


class ProposalIn(BaseModel):
    """The body an agent POSTs to /api/v1/proposals."""

    model_config = ConfigDict(extra="forbid")

    action: Action = Action.UPDATE
    object_type: ObjectType
    record_id: RecordId
    changes: dict[str, PropertyValue] | None = Field(default=None, min_length=1, max_length=20)
    note: NoteIn | None = None
    task: TaskIn | None = None
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    callback_url: AnyHttpUrl | None = None

    @model_validator(mode="after")
    def _payload_matches_action(self) -> ProposalIn:
        wanted = {Action.UPDATE: "changes", Action.CREATE_NOTE: "note", Action.CREATE_TASK: "task"}[self.action]
        for name in ("changes", "note", "task"):
            given = getattr(self, name) is not None
            if name == wanted and not given:
                raise ValueError(f"action {self.action.value!r} needs `{name}`")
            if name != wanted and given:
                raise ValueError(
                    f"`{name}` does not belong to action {self.action.value!r}; send it with action {_action_for(name)!r}"
                )
        return self


def _action_for(payload: str) -> str:
    return {"changes": "update", "note": "create_note", "task": "create_task"}[payload]


def hubspot_text(value: PropertyValue) -> str:
    """HubSpot takes every property value as a string; None and "" clear it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Change(BaseModel):
    """One property of the record: its value when the card was shown and the value proposed."""

    property: str
    label: str
    new: str
    old: str | None = None
    new_display: str = ""
    old_display: str = ""
    current: str | None = None  # what HubSpot held when a write was refused as stale
    current_display: str = ""
    edited: str | None = None  # the value the approver chose instead of `new`, in the Edit dialog
    edited_display: str = ""

    @builtins.property  # the field `property` shadows the builtin in this class body
    def approved(self) -> str:
        """The value to write: the approver's edit, else the agent's proposal."""
        return self.new if self.edited is None else self.edited

    @builtins.property
    def approved_display(self) -> str:
        return self.new_display if self.edited is None else self.edited_display


class RecordView(BaseModel):
    """What the card says about the record, read from HubSpot when the card is prepared."""

    name: str
    url: str
    owner_id: str | None = None
    owner_name: str | None = None
    pipeline_id: str | None = None  # deals and tickets: the pipeline the record is in


class MessageRef(BaseModel):
    """A posted message: `channel` is the id chat.update needs (D... in a DM, not the user id)."""

    channel: str
    ts: str


class ReplyRef(MessageRef):
    """A thread reply that carries an Undo button, with its text, so the button can be taken off later."""

    text: str


class CardRef(MessageRef):
    """Where the card was posted, and the copies kept in step with it (delegates' DMs)."""

    approver_user: str | None = None  # the owner's Slack user id, when the card went to their DM
    fallback_reason: str | None = None
    copies: list[MessageRef] = []


class Event(BaseModel):
    at: datetime
    type: str
    actor: str
    detail: dict[str, str] = {}


class Proposal(BaseModel):
    """A stored proposal; `status` and `events` change only through the store's transitions."""

    id: str
    agent: str
    action: Action
    object_type: ObjectType
    record_id: str
    changes: list[Change] = []
    note: NoteIn | None = None
    task: TaskIn | None = None
    reason: str
    idempotency_key: str | None = None
    callback_url: str | None = None
    created_at: datetime
    status: Status = Status.QUEUED
    tier: Tier = Tier.REVIEW
    approvals_required: int = 1
    approvals: list[str] = []
    approvers: list[str] = []  # Slack user ids who may decide, fixed when the card is posted
    rules_fired: list[str] = []  # the policy rules that raised this proposal's tier or approvals
    record: RecordView | None = None
    card: CardRef | None = None
    notify_channel: str | None = None  # where the owner hears of auto-applied changes (their DM)
    decided_by: str | None = None
    decided_at: datetime | None = None
    undone_by: str | None = None
    owner_user: str | None = None  # the record owner's Slack user, when they have one
    undo_target: Literal["old", "new"] = "old"  # what an undo writes: the old values, or (redo) the new ones
    reject_reason: str | None = None
    expires_at: datetime | None = None
    remind_at: datetime | None = None
    superseded_by: str | None = None
    superseded_link: str | None = None  # the newer proposal's card
    rivals: list[str] = []  # other agents' proposals for the same field, shown on this card to pick from
    rival_of: str | None = None  # the proposal whose card this one joined as an alternative
    undo_reply: ReplyRef | None = None
    created_object_id: str | None = None  # the note or task a create action made
    error: str | None = None
    events: list[Event] = []

    def public_view(self) -> dict[str, Any]:
        """What an agent reads back: from GET /api/v1/proposals/{id} and in callbacks."""
        return {
            "id": self.id,
            "status": self.status.value,
            "tier": self.tier.value,
            "agent": self.agent,
            "action": self.action.value,
            "object_type": self.object_type,
            "record_id": self.record_id,
            "record": self.record.model_dump(include={"name", "url"}) if self.record else None,
            "changes": [_public_change(change) for change in self.changes],
            "note": self.note.model_dump(mode="json") if self.note else None,
            "task": self.task.model_dump(mode="json") if self.task else None,
            "created_object_id": self.created_object_id,
            "reason": self.reason,
            "idempotency_key": self.idempotency_key,
            "callback_url": self.callback_url,
            "approvals_required": self.approvals_required,
            "approvals": self.approvals,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "reject_reason": self.reject_reason,
            "superseded_by": self.superseded_by,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "events": [event.model_dump(mode="json") for event in self.events],
        }


def _public_change(change: Change) -> dict[str, Any]:
    shown: dict[str, Any] = {"property": change.property, "label": change.label, "old": change.old, "new": change.new}
    if change.edited is not None:
        shown["approved"] = change.edited
    if change.current_display:
        shown["current"] = change.current
    return shown
