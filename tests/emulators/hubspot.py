"""A loopback emulator of HubSpot's CRM v3 API, driven over HTTP by the real hubspot-api-client.

Serves objects (get, patch, create, archive, batch read/update), properties, pipelines and
owners with HubSpot's JSON shapes, bearer-token auth, rate-limit headers, property history,
write validation and fault injection. State lives behind one lock: the server runs in a thread
while tests inspect state from the main thread.

Behaviour worth knowing:
- `writes()` lists only data-changing requests that succeeded (2xx, including 207).
- A write that sets a property to its current value adds no history entry.
- A backward `lifecyclestage` move in one write is silently ignored, as HubSpot does.
- Cleared values ("") are dropped: reads answer null, `record()` leaves them out.
- DELETE of an unknown id still answers 204 (archiving is idempotent, as HubSpot's is).
- Creating a deal or ticket without a pipeline puts it in the default one ("default", "0").
- History timestamps strictly increase (1 ms apart at least), so "newest entry" is unambiguous.
- Seeded values carry one CRM_UI history entry (sourceId "userId:9001", user 9001) at `SEED_TIME`;
  `set_as_user` entries use sourceId "userId:<user_id>".
- Without `set_rate_limit`, requests are counted for the headers (max 100) but never refused.
- The 401 check comes first; then `fail_next` faults; then the rate limit. All three answers
  are logged in `requests` and carry the rate-limit headers.
- Object types: contacts, companies, deals, tickets, notes, tasks; any other is a 400.

Additions to the agreed API: `SEED_TIME`, `RecordedRequest`, and `HubSpotEmulator.next_id`
(the id the next created record will get).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.emulators.loopback import LoopbackServer

TOKEN = "pat-test-token"
SEED_TIME = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
_OBJECT_TYPES = ("contacts", "companies", "deals", "tickets", "notes", "tasks")
_SINGULAR = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
    "tickets": "ticket",
    "notes": "note",
    "tasks": "task",
}
# HubSpot-defined association type ids -> (from type, to type).
_ASSOCIATION_TYPES = {
    202: ("notes", "contacts"),
    190: ("notes", "companies"),
    214: ("notes", "deals"),
    228: ("notes", "tickets"),
    204: ("tasks", "contacts"),
    192: ("tasks", "companies"),
    216: ("tasks", "deals"),
    230: ("tasks", "tickets"),
}
_BATCH_LIMIT = 100
_DAILY_LIMIT = 250_000
# (sourceType, sourceId, updatedByUserId) of a history entry; API writes carry no user.
_Source = tuple[str, str | None, int | None]
_API_SOURCE: _Source = ("INTEGRATION", "hsgate", None)
_SEED_SOURCE: _Source = ("CRM_UI", "userId:9001", 9001)
_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
_STATUS_CATEGORIES = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    409: "CONFLICT",
}


@dataclass
class RecordedRequest:
    """One request as the emulator saw it, with the status it answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int


@dataclass(frozen=True)
class _PropertyDef:
    name: str
    label: str
    type: str
    field_type: str
    options: tuple[tuple[str, str], ...] = ()
    read_only: bool = False
    calculated: bool = False
    external_options: bool = False
    referenced_object_type: str | None = None


@dataclass(frozen=True)
class _HistoryEntry:
    value: str
    timestamp: datetime
    source_type: str
    source_id: str | None
    user_id: int | None


@dataclass
class _StoredRecord:
    id: str
    created_at: datetime
    updated_at: datetime
    values: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[_HistoryEntry]] = field(default_factory=dict)  # oldest first
    associations: dict[str, list[str]] = field(default_factory=dict)  # to type -> ids
    archived_at: datetime | None = None


@dataclass
class _Owner:
    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    teams: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Stage:
    id: str
    label: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class _Pipeline:
    id: str
    label: str
    stages: tuple[_Stage, ...]


@dataclass
class _Fault:
    status: int
    remaining: int
    path_contains: str


class _InvalidValue(Exception):
    """One property value HubSpot would refuse, with its error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _HubSpotError(Exception):
    """Raised by handlers to answer an error; carries the status and HubSpot's JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


# ---------------------------------------------------------------- seed definitions

_LIFECYCLE_OPTIONS = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)


def _text(name: str, label: str, field_type: str = "text") -> _PropertyDef:
    return _PropertyDef(name, label, "string", field_type)


def _number(name: str, label: str) -> _PropertyDef:
    return _PropertyDef(name, label, "number", "number")


def _enum(name: str, label: str, options: tuple[tuple[str, str], ...], field_type: str = "select") -> _PropertyDef:
    return _PropertyDef(name, label, "enumeration", field_type, options)


def _external(name: str, label: str, referenced: str | None = None, field_type: str = "select") -> _PropertyDef:
    return _PropertyDef(name, label, "enumeration", field_type, external_options=True, referenced_object_type=referenced)


def _calculated(name: str, label: str) -> _PropertyDef:
    return _PropertyDef(name, label, "number", "number", calculated=True)


def _system(modified_name: str) -> tuple[_PropertyDef, ...]:
    return (
        _PropertyDef("hs_object_id", "Record ID", "number", "number", read_only=True),
        _PropertyDef("createdate", "Create Date", "datetime", "date", read_only=True),
        _PropertyDef(modified_name, "Last Modified Date", "datetime", "date", read_only=True),
    )


_OWNER = _external("hubspot_owner_id", "Owner", "OWNER")
_PRIORITIES = (("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High"))

_PROPERTIES: dict[str, tuple[_PropertyDef, ...]] = {
    "deals": (
        _text("dealname", "Deal Name"),
        _number("amount", "Amount"),
        _external("dealstage", "Deal Stage", "PIPELINE_STAGE", "radio"),
        _external("pipeline", "Pipeline"),
        _PropertyDef("closedate", "Close Date", "datetime", "date"),
        _text("description", "Deal Description", "textarea"),
        _enum("dealtype", "Deal Type", (("newbusiness", "New Business"), ("existingbusiness", "Existing Business"))),
        _OWNER,
        _PropertyDef("contract_start", "Contract Start", "date", "date"),
        *_system("hs_lastmodifieddate"),
        _calculated("hs_deal_stage_probability", "Deal _Stage Probability"),
        _calculated("days_to_close", "Days to Close"),
    ),
    "contacts": (
        _text("email", "Email"),
        _text("firstname", "First Name"),
        _text("lastname", "Last Name"),
        _text("jobtitle", "Job Title"),
        _text("phone", "Phone Number"),
        _enum("lifecyclestage", "Lifecycle Stage", _LIFECYCLE_OPTIONS, "radio"),
        _OWNER,
        *_system("lastmodifieddate"),
        _calculated("num_notes", "Number of Sales Activities"),
    ),
    "companies": (
        _text("name", "Company Name"),
        _text("domain", "Company Domain Name"),
        _enum("industry", "Industry", (("SOFTWARE", "Software"), ("RETAIL", "Retail"), ("BANKING", "Banking"))),
        _number("numberofemployees", "Number of Employees"),
        _number("annualrevenue", "Annual Revenue"),
        _enum("lifecyclestage", "Lifecycle Stage", _LIFECYCLE_OPTIONS, "radio"),
        _OWNER,
        *_system("hs_lastmodifieddate"),
    ),
    "tickets": (
        _text("subject", "Ticket Name"),
        _text("content", "Ticket Description", "textarea"),
        _external("hs_pipeline", "Pipeline"),
        _external("hs_pipeline_stage", "Ticket Status", "PIPELINE_STAGE"),
        _enum("hs_ticket_priority", "Priority", (*_PRIORITIES, ("URGENT", "Urgent"))),
        _OWNER,
        *_system("hs_lastmodifieddate"),
    ),
    "notes": (
        _text("hs_note_body", "Note Body", "html"),
        _PropertyDef("hs_timestamp", "Activity Date", "datetime", "date"),
        _OWNER,
        *_system("hs_lastmodifieddate"),
    ),
    "tasks": (
        _text("hs_task_subject", "Task Title"),
        _text("hs_task_body", "Task Notes", "textarea"),
        _PropertyDef("hs_timestamp", "Due Date", "datetime", "date"),
        _enum(
            "hs_task_status",
            "Task Status",
            tuple((s, s.replace("_", " ").title()) for s in ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED")),
        ),
        _enum("hs_task_priority", "Priority", _PRIORITIES),
        _OWNER,
        *_system("hs_lastmodifieddate"),
    ),
}
# Properties a read answers when the caller names none, as HubSpot's defaults per type.
_DEFAULT_READ = {
    "deals": ("dealname", "amount", "dealstage", "pipeline", "closedate"),
    "contacts": ("email", "firstname", "lastname"),
    "companies": ("name", "domain"),
    "tickets": ("subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority"),
    "notes": ("hs_note_body", "hs_timestamp"),
    "tasks": ("hs_task_subject", "hs_task_status", "hs_timestamp"),
}


def _deal_stage(stage_id: str, label: str, probability: float, closed: bool = False) -> _Stage:
    return _Stage(stage_id, label, {"isClosed": str(closed).lower(), "probability": str(probability)})


def _ticket_stage(stage_id: str, label: str, state: str = "OPEN") -> _Stage:
    return _Stage(stage_id, label, {"ticketState": state})


_PIPELINES: dict[str, tuple[_Pipeline, ...]] = {
    "deals": (
        _Pipeline(
            "default",
            "Sales Pipeline",
            (
                _deal_stage("appointmentscheduled", "Appointment Scheduled", 0.2),
                _deal_stage("qualifiedtobuy", "Qualified To Buy", 0.4),
                _deal_stage("presentationscheduled", "Presentation Scheduled", 0.6),
                _deal_stage("decisionmakerboughtin", "Decision Maker Bought-In", 0.8),
                _deal_stage("contractsent", "Contract Sent", 0.9),
                _deal_stage("closedwon", "Closed Won", 1.0, closed=True),
                _deal_stage("closedlost", "Closed Lost", 0.0, closed=True),
            ),
        ),
        _Pipeline(
            "renewals",
            "Renewals",
            (_deal_stage("renewalopen", "Renewal Open", 0.5), _deal_stage("renewalwon", "Renewal Won", 1.0, closed=True)),
        ),
    ),
    "tickets": (
        _Pipeline(
            "0",
            "Support Pipeline",
            (
                _ticket_stage("1", "New"),
                _ticket_stage("2", "Waiting on contact"),
                _ticket_stage("3", "Waiting on us"),
                _ticket_stage("4", "Closed", "CLOSED"),
            ),
        ),
    ),
}
# (pipeline property, stage property, default pipeline) per type with pipelines.
_PIPELINE_PROPS = {"deals": ("pipeline", "dealstage", "default"), "tickets": ("hs_pipeline", "hs_pipeline_stage", "0")}

_SEED_OWNERS = (
    _Owner("1001", "maria@example.com", "Maria", "Lopez", 9001, [{"id": "T1", "name": "EU Sales", "primary": True}]),
    _Owner("1002", "sam@example.com", "Sam", "Okafor", 9002),
    _Owner("1003", "nora@example.com", "Nora", "Blake", 9003),
)
_SEED_RECORDS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("deals", "1001", {"dealname": "Acme renewal", "amount": "50000", "dealstage": "appointmentscheduled", "pipeline": "default",
                       "closedate": "2026-12-15T00:00:00Z", "hubspot_owner_id": "1001", "dealtype": "newbusiness"}),
    ("deals", "1002", {"dealname": "Globex expansion", "amount": "120000", "dealstage": "qualifiedtobuy", "pipeline": "default",
                       "closedate": "2027-01-31T00:00:00Z", "hubspot_owner_id": "1002"}),
    ("deals", "1003", {"dealname": "Initech pilot", "amount": "8000", "dealstage": "appointmentscheduled", "pipeline": "default"}),
    ("deals", "1004", {"dealname": "Umbrella deal", "amount": "30000", "dealstage": "contractsent", "pipeline": "default", "hubspot_owner_id": "1003"}),
    ("deals", "1005", {"dealname": "Hooli renewal", "amount": "40000", "dealstage": "renewalopen", "pipeline": "renewals", "hubspot_owner_id": "1001"}),
    ("contacts", "2001", {"firstname": "Jane", "lastname": "Doe", "email": "jane@acme.example", "jobtitle": "Buyer",
                          "lifecyclestage": "opportunity", "hubspot_owner_id": "1001"}),
    ("companies", "3001", {"name": "Acme Corp", "domain": "acme.example", "industry": "SOFTWARE", "hubspot_owner_id": "1001", "lifecyclestage": "customer"}),
    ("tickets", "4001", {"subject": "Login broken", "hs_pipeline": "0", "hs_pipeline_stage": "1", "hs_ticket_priority": "HIGH", "hubspot_owner_id": "1001"}),
)  # fmt: skip
_FIRST_NEW_ID = 90001


# ---------------------------------------------------------------- formatting helpers


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_value(moment: datetime) -> str:
    """Datetime property values read back without milliseconds when they have none, as HubSpot does."""
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.astimezone(UTC).isoformat(timespec=spec).replace("+00:00", "Z")


def _parse_instant(raw: str) -> datetime | None:
    """Accepts ms since the epoch or an ISO date/datetime (naive means UTC)."""
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_number(raw: str) -> bool:
    try:
        float(raw)
    except ValueError:
        return False
    return True


def _error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


def _not_found(object_type: str, object_id: str) -> _HubSpotError:
    message = f"Object not found.  objectId are usually numeric. ({object_type} {object_id})"
    return _HubSpotError(404, _error_body(message, "OBJECT_NOT_FOUND"))


def _bad_request(message: str) -> _HubSpotError:
    return _HubSpotError(400, _error_body(message, "VALIDATION_ERROR"))


def _detail(name: str, code: str, message: str) -> dict[str, Any]:
    return {"message": message, "code": code, "context": {"propertyName": [name]}}


def _validation_error(details: list[dict[str, Any]]) -> dict[str, Any]:
    # HubSpot embeds the legacy per-property results as JSON inside the message.
    legacy = [
        {"isValid": False, "message": d["message"], "error": d["code"], "name": d["context"]["propertyName"][0]} for d in details
    ]
    return _error_body(f"Property values were not valid: {json.dumps(legacy)}", "VALIDATION_ERROR", errors=details)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    # The SDK sends Python booleans through urlencode, so "False"/"True" arrive capitalised.
    return query.get(name, ["false"])[0].lower() == "true"


def _names(values: list[str]) -> list[str]:
    """Query lists may be repeated params or comma-separated; HubSpot takes both."""
    return [name for value in values for name in value.split(",") if name]


PORTAL_ID = 4242424

Handler = Callable[[dict[str, str], dict[str, list[str]], Any], tuple[int, Any]]


class HubSpotEmulator:
    """HubSpot CRM v3 on loopback. `start()` to serve; `reset()` between tests."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.url = ""
        self._lock = threading.RLock()
        self._server: LoopbackServer | None = None
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(r"/crm/v3/objects/(?P<type>[^/]+)/batch/read"), self._batch_read),
            ("POST", re.compile(r"/crm/v3/objects/(?P<type>[^/]+)/batch/update"), self._batch_update),
            ("GET", re.compile(r"/crm/v3/objects/(?P<type>[^/]+)/(?P<id>[^/]+)"), self._get_object),
            ("PATCH", re.compile(r"/crm/v3/objects/(?P<type>[^/]+)/(?P<id>[^/]+)"), self._patch_object),
            ("DELETE", re.compile(r"/crm/v3/objects/(?P<type>[^/]+)/(?P<id>[^/]+)"), self._archive_object),
            ("POST", re.compile(r"/crm/v3/objects/(?P<type>[^/]+)"), self._create_object),
            ("GET", re.compile(r"/crm/v3/properties/(?P<type>[^/]+)"), self._get_properties),
            ("GET", re.compile(r"/crm/v3/properties/(?P<type>[^/]+)/(?P<name>[^/]+)"), self._get_property_def),
            ("GET", re.compile(r"/crm/v3/pipelines/(?P<type>[^/]+)"), self._get_pipelines),
            ("GET", re.compile(r"/crm/v3/owners/?"), self._get_owners),
            ("GET", re.compile(r"/crm/v3/owners/(?P<id>[^/]+)"), self._get_owner),
            ("GET", re.compile(r"/account-info/v3/details"), self._get_account),
        ]
        self._app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])
        self.reset()

    # ------------------------------------------------------------ lifecycle

    def start(self, port: int = 0) -> HubSpotEmulator:
        self._server = LoopbackServer(self._app, port).start()
        self.url = self._server.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def reset(self) -> None:
        with self._lock:
            self.requests: list[RecordedRequest] = []
            self._records: dict[str, dict[str, _StoredRecord]] = {t: {} for t in _OBJECT_TYPES}
            self._owners: dict[str, _Owner] = {o.id: replace(o, teams=list(o.teams)) for o in _SEED_OWNERS}
            self._faults: list[_Fault] = []
            self._limit: int | None = None
            self._interval_s = 10.0
            self._window: deque[float] = deque()
            self._daily_used = 0
            self._last_write = SEED_TIME
            self.next_id = _FIRST_NEW_ID
            for object_type, record_id, properties in _SEED_RECORDS:
                self._seed(object_type, record_id, properties)

    def _seed(self, object_type: str, record_id: str, properties: Mapping[str, str | None]) -> None:
        record = _StoredRecord(record_id, SEED_TIME, SEED_TIME)
        for name, value in properties.items():
            if value:
                record.values[name] = value
                record.history[name] = [_HistoryEntry(value, SEED_TIME, *_SEED_SOURCE)]
        self._records[object_type][record_id] = record

    # ------------------------------------------------------------ test-side API

    def add_record(self, object_type: str, record_id: str, properties: dict[str, str | None]) -> None:
        """Adds a record as if created in HubSpot's UI; values are stored as given (no validation)."""
        with self._lock:
            self._seed(object_type, record_id, properties)

    def get_property(self, object_type: str, record_id: str, name: str) -> str | None:
        return self.record(object_type, record_id).get(name)

    def record(self, object_type: str, record_id: str) -> dict[str, str | None]:
        with self._lock:
            return dict(self._current(object_type, self._records[object_type][record_id]))

    def set_as_user(self, object_type: str, record_id: str, name: str, value: str, user_id: int = 9002) -> None:
        with self._lock:
            self._store(self._records[object_type][record_id], {name: value}, ("CRM_UI", f"userId:{user_id}", user_id))

    def associations(self, object_type: str, record_id: str, to_type: str) -> list[str]:
        with self._lock:
            return list(self._records[object_type][record_id].associations.get(to_type, []))

    def archived(self, object_type: str, record_id: str) -> bool:
        with self._lock:
            return self._records[object_type][record_id].archived_at is not None

    def add_owner(self, owner_id: str, email: str, first_name: str, last_name: str, user_id: int) -> None:
        with self._lock:
            self._owners[owner_id] = _Owner(owner_id, email, first_name, last_name, user_id)

    def writes(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if _is_write(r)]

    def fail_next(self, status: int, count: int = 1, path_contains: str = "") -> None:
        with self._lock:
            self._faults.append(_Fault(status, count, path_contains))

    def set_rate_limit(self, max_requests: int = 100, interval_s: float = 10.0) -> None:
        with self._lock:
            self._limit = max_requests
            self._interval_s = interval_s
            self._window.clear()

    # ------------------------------------------------------------ HTTP plumbing

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        query: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            query.setdefault(key, []).append(value)
        with self._lock:
            status, payload, extra_headers = self._answer(request, raw, query)
            self.requests.append(RecordedRequest(request.method, request.url.path, query, _parse_json(raw), status))
            headers = self._rate_headers() | extra_headers
        content = b"" if payload is None else json.dumps(payload).encode()
        media_type = None if payload is None else "application/json;charset=utf-8"
        return Response(content, status, headers=headers, media_type=media_type)

    def _answer(self, request: Request, raw: bytes, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, _error_body(_AUTH_MESSAGE, "INVALID_AUTHENTICATION"), {}
        fault = self._take_fault(request.url.path)
        admitted = self._admit()
        if fault == 429 or (fault is None and not admitted):
            return 429, _rate_limit_body(), {"X-HubSpot-RateLimit-Remaining": "0"}
        if fault is not None:
            message = "internal error" if fault >= 500 else "injected fault"
            return fault, _error_body(message, _STATUS_CATEGORIES.get(fault, "INTERNAL_ERROR")), {}
        try:
            status, payload = self._dispatch(request.method, request.url.path, query, raw)
        except _HubSpotError as err:
            return err.status, err.body, {}
        return status, payload, {}

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> tuple[int, Any]:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                if "type" in match.groupdict():
                    self._check_type(match["type"], path)
                try:
                    return handler(match.groupdict(), query, _parse_json(raw))
                except (KeyError, TypeError, AttributeError) as err:
                    # Malformed input (a missing "inputs", a non-object body): HubSpot answers 400.
                    raise _bad_request(f"Invalid input JSON on path {path}: {err!r}") from err
        raise _HubSpotError(404, _error_body(f"Unable to route {method} {path}", "OBJECT_NOT_FOUND"))

    def _check_type(self, object_type: str, path: str) -> None:
        known = _PIPELINES if path.startswith("/crm/v3/pipelines/") else _OBJECT_TYPES
        if object_type not in known:
            raise _bad_request(f"Unable to infer object type from: {object_type}")

    def _take_fault(self, path: str) -> int | None:
        for fault in self._faults:
            if fault.path_contains in path:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault.status
        return None

    def _admit(self) -> bool:
        """Counts the request in the rolling window; False when `set_rate_limit`'s budget is spent."""
        now = time.monotonic()
        while self._window and self._window[0] <= now - self._interval_s:
            self._window.popleft()
        self._daily_used += 1
        if self._limit is not None and len(self._window) >= self._limit:
            return False
        self._window.append(now)
        return True

    def _rate_headers(self) -> dict[str, str]:
        limit = self._limit or 100
        return {
            "X-HubSpot-RateLimit-Max": str(limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, limit - len(self._window))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self._interval_s * 1000)),
            "X-HubSpot-RateLimit-Daily": str(_DAILY_LIMIT),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, _DAILY_LIMIT - self._daily_used)),
        }

    # ------------------------------------------------------------ objects

    def _get_object(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        object_type = params["type"]
        record = self._find(object_type, params["id"], _id_property(query), _flag(query, "archived"))
        properties, with_history = _names(query.get("properties", [])), _names(query.get("propertiesWithHistory", []))
        payload = self._object_json(object_type, record, properties, with_history)
        # HubSpot leaves out association types the record has none of.
        linked = {t: ids for t in _names(query.get("associations", [])) if (ids := record.associations.get(t))}
        if linked:
            payload["associations"] = {
                t: {"results": [{"id": i, "type": _association_label(object_type, t)} for i in ids]} for t, ids in linked.items()
            }
        return 200, payload

    def _patch_object(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        object_type = params["type"]
        record = self._find(object_type, params["id"], _id_property(query))
        properties = _object_body(body)["properties"]
        self._apply(object_type, record, properties)
        return 200, self._object_json(object_type, record, list(properties), [])

    def _archive_object(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        record = self._records[params["type"]].get(params["id"])
        if record is not None and record.archived_at is None:
            record.archived_at = self._tick()
        return 204, None

    def _create_object(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        object_type = params["type"]
        request = _object_body(body)
        properties = dict(request.get("properties", {}))
        if object_type in _PIPELINE_PROPS:
            # HubSpot puts a record created without a pipeline into the default one.
            pipeline_prop, _, default = _PIPELINE_PROPS[object_type]
            properties.setdefault(pipeline_prop, default)
        changes = self._validated(object_type, {}, properties)
        targets = self._association_targets(object_type, request.get("associations", []))
        moment = self._tick()
        record = _StoredRecord(str(self.next_id), moment, moment)
        self.next_id += 1
        self._records[object_type][record.id] = record
        self._store(record, changes, _API_SOURCE)
        for to_type, to_id in targets:
            record.associations.setdefault(to_type, []).append(to_id)
            self._records[to_type][to_id].associations.setdefault(object_type, []).append(record.id)
        return 201, self._object_json(object_type, record, list(properties), [])

    def _batch_read(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        object_type = params["type"]
        request = _object_body(body)
        ids = _batch_ids(request["inputs"])
        records = {i: self._find_or_none(object_type, i, request.get("idProperty")) for i in ids}
        found = [r for r in records.values() if r is not None]
        missing = [i for i, r in records.items() if r is None]
        results = [
            self._object_json(object_type, r, request.get("properties", []), request.get("propertiesWithHistory", []))
            for r in found
        ]
        return _batch_response(results, [_missing_error(object_type, missing)] if missing else [])

    def _batch_update(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        object_type = params["type"]
        inputs = _object_body(body)["inputs"]
        _batch_ids(inputs)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        missing: list[str] = []
        for item in inputs:
            object_id = str(item["id"])
            record = self._find_or_none(object_type, object_id, item.get("idProperty"))
            if record is None:
                missing.append(object_id)
                continue
            try:
                self._apply(object_type, record, item["properties"])
            except _HubSpotError as err:
                errors.append(_batch_error("VALIDATION_ERROR", err.body["message"], [object_id], err.body.get("errors", [])))
                continue
            results.append(self._object_json(object_type, record, list(item["properties"]), []))
        return _batch_response(results, errors + ([_missing_error(object_type, missing)] if missing else []))

    # ------------------------------------------------------------ records

    def _find(self, object_type: str, object_id: str, id_property: str | None = None, archived: bool = False) -> _StoredRecord:
        record = self._find_or_none(object_type, object_id, id_property, archived)
        if record is None:
            raise _not_found(object_type, object_id)
        return record

    def _find_or_none(
        self, object_type: str, object_id: str, id_property: str | None = None, archived: bool = False
    ) -> _StoredRecord | None:
        records = self._records[object_type]
        if id_property in (None, "", "hs_object_id"):
            record = records.get(str(object_id))
        else:
            record = next((r for r in records.values() if r.values.get(id_property) == object_id), None)
        if record is None or (record.archived_at is not None) != archived:
            return None
        return record

    def _current(self, object_type: str, record: _StoredRecord) -> dict[str, str]:
        """Stored values plus the system properties HubSpot derives from the record itself."""
        return {
            **record.values,
            "hs_object_id": record.id,
            "createdate": _iso(record.created_at),
            _modified_name(object_type): _iso(record.updated_at),
        }

    def _object_json(
        self, object_type: str, record: _StoredRecord, properties: list[str], with_history: list[str]
    ) -> dict[str, Any]:
        defined = {p.name for p in _PROPERTIES[object_type]}
        current = self._current(object_type, record)
        names = ["hs_object_id", "createdate", _modified_name(object_type), *(properties or _DEFAULT_READ[object_type])]
        payload: dict[str, Any] = {
            "id": record.id,
            "properties": {n: current.get(n) for n in names if n in defined},
            "createdAt": _iso(record.created_at),
            "updatedAt": _iso(record.updated_at),
            "archived": record.archived_at is not None,
        }
        if record.archived_at is not None:
            payload["archivedAt"] = _iso(record.archived_at)
        if with_history:
            payload["propertiesWithHistory"] = {
                n: [_history_json(e) for e in reversed(record.history.get(n, []))] for n in with_history if n in defined
            }
        return payload

    def _apply(self, object_type: str, record: _StoredRecord, properties: Any) -> None:
        self._store(record, self._validated(object_type, record.values, properties), _API_SOURCE)

    def _store(self, record: _StoredRecord, changes: dict[str, str], source: _Source) -> None:
        moment = self._tick()
        for name, value in changes.items():
            if record.values.get(name, "") == value:
                continue
            if value:
                record.values[name] = value
            else:
                record.values.pop(name, None)
            record.history.setdefault(name, []).append(_HistoryEntry(value, moment, *source))
        record.updated_at = moment

    def _tick(self) -> datetime:
        """Now, to the millisecond, and always after the previous write."""
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self._last_write = max(now, self._last_write + timedelta(milliseconds=1))
        return self._last_write

    def _association_targets(self, object_type: str, specs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        targets: list[tuple[str, str]] = []
        for spec in specs:
            to_id = str(spec["to"]["id"])
            for kind in spec["types"]:
                from_type, to_type = _ASSOCIATION_TYPES.get(kind["associationTypeId"], ("", ""))
                if from_type != object_type:
                    raise _bad_request(f"associationTypeId {kind['associationTypeId']} is not valid from {object_type}")
                if self._find_or_none(to_type, to_id) is None:
                    raise _bad_request(f"No {to_type} with id {to_id} to associate")
                targets.append((to_type, to_id))
        return targets

    # ------------------------------------------------------------ validation

    def _validated(self, object_type: str, current: dict[str, str], properties: dict[str, Any]) -> dict[str, str]:
        """The normalised values one write stores, or the 400 HubSpot answers for it."""
        incoming = {name: "" if raw is None else str(raw) for name, raw in properties.items()}
        defined = {p.name: p for p in _PROPERTIES[object_type]}
        changes: dict[str, str] = {}
        details: list[dict[str, Any]] = []
        for name, value in incoming.items():
            prop = defined.get(name)
            try:
                if prop is None:
                    raise _InvalidValue("PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                changes[name] = self._normalised(object_type, prop, value, current, incoming)
            except _InvalidValue as invalid:
                details.append(_detail(name, invalid.code, str(invalid)))
        if details:
            raise _HubSpotError(400, _validation_error(details))
        return {n: v for n, v in changes.items() if not _moves_backward(n, current.get(n, ""), v)}

    def _normalised(
        self, object_type: str, prop: _PropertyDef, value: str, current: dict[str, str], incoming: dict[str, str]
    ) -> str:
        if prop.read_only or prop.calculated:
            raise _InvalidValue("READ_ONLY_VALUE", f'"{prop.name}" is a read only property; its value cannot be set.')
        if value == "":
            return value
        if prop.type == "number" and not _is_number(value):
            raise _InvalidValue("INVALID_INTEGER", f"{value} was not a valid number.")
        if prop.type == "date":
            return _date_value(value)
        if prop.type == "datetime":
            return _datetime_value(value)
        if prop.type == "enumeration":
            allowed = self._options(object_type, prop, current, incoming)
            if value not in allowed:
                raise _InvalidValue("INVALID_OPTION", f"{value} was not one of the allowed options: [{', '.join(allowed)}]")
        return value

    def _options(self, object_type: str, prop: _PropertyDef, current: dict[str, str], incoming: dict[str, str]) -> list[str]:
        """Allowed values of an enumeration; owners and pipeline stages live outside the property."""
        if prop.name == "hubspot_owner_id":
            return list(self._owners)
        pipeline_prop, stage_prop, default = _PIPELINE_PROPS.get(object_type, ("", "", ""))
        pipelines = {p.id: p for p in _PIPELINES.get(object_type, ())}
        if prop.name == pipeline_prop:
            return list(pipelines)
        if prop.name == stage_prop:
            # A stage belongs to the pipeline sent in this write, else to the record's own.
            pipeline = pipelines.get(incoming.get(pipeline_prop) or current.get(pipeline_prop) or default)
            return [s.id for s in pipeline.stages] if pipeline else []
        return [value for value, _ in prop.options]

    # ------------------------------------------------------------ properties, pipelines, owners

    def _get_properties(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        object_type = params["type"]
        return 200, {"results": [_property_json(object_type, p, i) for i, p in enumerate(_PROPERTIES[object_type])]}

    def _get_property_def(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        object_type = params["type"]
        for index, prop in enumerate(_PROPERTIES[object_type]):
            if prop.name == params["name"]:
                return 200, _property_json(object_type, prop, index)
        raise _HubSpotError(404, _error_body(f"property {params['name']} does not exist", "OBJECT_NOT_FOUND"))

    def _get_pipelines(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        return 200, {"results": [_pipeline_json(p, i) for i, p in enumerate(_PIPELINES[params["type"]])]}

    def _get_owners(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        email = query.get("email", [""])[0].lower()
        # No owner is ever archived here, so an archived listing is empty.
        owners = [] if _flag(query, "archived") else [o for o in self._owners.values() if not email or o.email.lower() == email]
        start = int(query.get("after", ["0"])[0])
        end = start + int(query.get("limit", ["100"])[0])
        payload: dict[str, Any] = {"results": [_owner_json(o) for o in owners[start:end]]}
        if end < len(owners):
            payload["paging"] = {"next": {"after": str(end), "link": f"{self.url}/crm/v3/owners/?after={end}"}}
        return 200, payload

    def _get_owner(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        by_user_id = query.get("idProperty", ["id"])[0] == "userId"
        for owner in self._owners.values():
            if (str(owner.user_id) if by_user_id else owner.id) == params["id"]:
                return 200, _owner_json(owner)
        raise _HubSpotError(404, _error_body(f"Owner {params['id']} not found", "OBJECT_NOT_FOUND"))

    def _get_account(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        return 200, {
            "portalId": PORTAL_ID,
            "accountType": "STANDARD",
            "timeZone": "Europe/Berlin",
            "companyCurrency": "EUR",
            "additionalCurrencies": [],
            "utcOffset": "+01:00",
            "utcOffsetMilliseconds": 3_600_000,
            "uiDomain": "app-eu1.hubspot.com",
            "dataHostingLocation": "eu1",
        }


# ---------------------------------------------------------------- module helpers


def _parse_json(raw: bytes) -> Any:
    """Parsed JSON, None for no body, or the raw text when it is not JSON (the handler refuses it)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _rate_limit_body() -> dict[str, Any]:
    return {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": "TEN_SECONDLY_ROLLING",
        "groupName": "publicapi:private-app:hsgate",
    }


def _object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad_request("Invalid input JSON: expected an object")
    return body


def _is_write(request: RecordedRequest) -> bool:
    return (
        request.method in ("PATCH", "POST", "DELETE")
        and 200 <= request.status < 300
        and not request.path.endswith(("/batch/read", "/search"))
    )


def _id_property(query: dict[str, list[str]]) -> str | None:
    return query.get("idProperty", [None])[0]


def _modified_name(object_type: str) -> str:
    return "lastmodifieddate" if object_type == "contacts" else "hs_lastmodifieddate"


def _association_label(from_type: str, to_type: str) -> str:
    return f"{_SINGULAR[from_type]}_to_{_SINGULAR[to_type]}"


def _moves_backward(name: str, old: str, new: str) -> bool:
    order = [value for value, _ in _LIFECYCLE_OPTIONS]
    if name != "lifecyclestage" or old not in order or new not in order:
        return False
    return order.index(new) < order.index(old)


def _date_value(raw: str) -> str:
    moment = _parse_instant(raw)
    utc = moment.astimezone(UTC) if moment else None
    if utc is None or utc != utc.replace(hour=0, minute=0, second=0, microsecond=0):
        raise _InvalidValue("INVALID_DATE", f"{raw} is not a date at midnight UTC.")
    return utc.date().isoformat()


def _datetime_value(raw: str) -> str:
    moment = _parse_instant(raw)
    if moment is None:
        raise _InvalidValue("INVALID_DATE", f"{raw} is not a valid datetime.")
    return _iso_value(moment)


def _history_json(entry: _HistoryEntry) -> dict[str, Any]:
    return {
        "value": entry.value,
        "timestamp": _iso(entry.timestamp),
        "sourceType": entry.source_type,
        "sourceId": entry.source_id,
        "updatedByUserId": entry.user_id,
    }


def _batch_ids(inputs: list[dict[str, Any]]) -> list[str]:
    if len(inputs) > _BATCH_LIMIT:
        raise _bad_request(f"Too many inputs: {len(inputs)}, the limit is {_BATCH_LIMIT}")
    return [str(item["id"]) for item in inputs]


def _batch_error(category: str, message: str, ids: list[str], details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"status": "error", "category": category, "message": message, "context": {"ids": ids}}
    if details:
        error["errors"] = details
    return error


def _missing_error(object_type: str, ids: list[str]) -> dict[str, Any]:
    message = f"Could not get some {_SINGULAR[object_type]} objects, they may be deleted or not exist. Check that ids are valid."
    return _batch_error("OBJECT_NOT_FOUND", message, ids)


def _batch_response(results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> tuple[int, Any]:
    now = _iso(datetime.now(UTC))
    payload: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
    if not errors:
        return 200, payload
    return 207, payload | {"numErrors": len(errors), "errors": errors}


def _property_json(object_type: str, prop: _PropertyDef, index: int) -> dict[str, Any]:
    fixed = not (prop.read_only or prop.calculated)
    payload: dict[str, Any] = {
        "name": prop.name,
        "label": prop.label,
        "type": prop.type,
        "fieldType": prop.field_type,
        "groupName": f"{_SINGULAR[object_type]}information",
        "description": "",
        "options": [
            {"label": label, "value": value, "displayOrder": i, "hidden": False, "description": ""}
            for i, (value, label) in enumerate(prop.options)
        ],
        "displayOrder": index,
        "calculated": prop.calculated,
        "externalOptions": prop.external_options,
        "hasUniqueValue": prop.name == "hs_object_id",
        "hidden": False,
        "formField": fixed,
        "modificationMetadata": {"archivable": False, "readOnlyDefinition": True, "readOnlyValue": not fixed},
        "createdAt": _iso(SEED_TIME),
        "updatedAt": _iso(SEED_TIME),
        "archived": False,
    }
    if prop.referenced_object_type:
        payload["referencedObjectType"] = prop.referenced_object_type
    return payload


def _stage_json(stage: _Stage, index: int) -> dict[str, Any]:
    return {
        "id": stage.id,
        "label": stage.label,
        "displayOrder": index,
        "archived": False,
        "createdAt": _iso(SEED_TIME),
        "updatedAt": _iso(SEED_TIME),
        "writePermissions": "CRUD_ALL",
        "metadata": dict(stage.metadata),
    }


def _pipeline_json(pipeline: _Pipeline, index: int) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "label": pipeline.label,
        "displayOrder": index,
        "archived": False,
        "createdAt": _iso(SEED_TIME),
        "updatedAt": _iso(SEED_TIME),
        "stages": [_stage_json(s, i) for i, s in enumerate(pipeline.stages)],
    }


def _owner_json(owner: _Owner) -> dict[str, Any]:
    return {
        "id": owner.id,
        "email": owner.email,
        "firstName": owner.first_name,
        "lastName": owner.last_name,
        "userId": owner.user_id,
        "userIdIncludingInactive": owner.user_id,
        "type": "PERSON",
        "createdAt": _iso(SEED_TIME),
        "updatedAt": _iso(SEED_TIME),
        "archived": False,
        "teams": list(owner.teams),
    }
