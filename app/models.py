"""What a proposal is: the agents' request body and the stored record of its life."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints, model_validator

OBJECT_TYPES: tuple[str, ...] = ("contacts", "companies", "deals", "tickets")
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
                raise ValueError(f"`{name}` does not belong to action {self.action.value!r}; send it with action {_action_for(name)!r}")
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

    @property
    def approved(self) -> str:
        """The value to write: the approver's edit, else the agent's proposal."""
        return self.new if self.edited is None else self.edited

    @property
    def approved_display(self) -> str:
        return self.new_display if self.edited is None else self.edited_display


class RecordView(BaseModel):
    """What the card says about the record, read from HubSpot when the card is prepared."""

    name: str
    url: str
    owner_id: str | None = None
    owner_name: str | None = None
    owner_email: str | None = None


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
    undo_target: Literal["old", "new"] = "old"  # what an undo writes: the old values, or (redo) the new ones
    reject_reason: str | None = None
    expires_at: datetime | None = None
    superseded_by: str | None = None
    undo_reply: ReplyRef | None = None
    created_object_id: str | None = None  # the note or task a create action made
    error: str | None = None
    events: list[Event] = []

    def change(self, name: str) -> Change:
        return next(change for change in self.changes if change.property == name)
