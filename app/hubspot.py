"""The HubSpot gateway: the one place hsgate talks to HubSpot.

Everything passes through `_call`, which paces requests with a rate limit shared by every process
(a Redis counter per window), gives each request a timeout, and retries 429s, 5xx answers and
transport errors with backoff. Schema reads (properties, pipelines, owners) are cached in Redis so
web and worker processes share them. Record reads go in batches of up to 100.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import urllib3
from hubspot import HubSpot
from hubspot.crm.objects import (
    AssociationSpec,
    BatchReadInputSimplePublicObjectId,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiException
from hubspot.crm.owners.exceptions import ApiException as OwnersApiException
from hubspot.crm.pipelines.exceptions import ApiException as PipelinesApiException
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from redis import Redis

from app.schema import Option, Owner, Pipeline, PropertyDef, Schema, Stage

log = logging.getLogger(__name__)

T = TypeVar("T")

API_EXCEPTIONS = (ObjectsApiException, OwnersApiException, PipelinesApiException, PropertiesApiException)
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, requests.RequestException)
BATCH_SIZE = 100
SCHEMA_FRESH_S = 300  # older than this, the next worker that needs it reads it again
SCHEMA_KEEP_S = 7 * 24 * 3600  # how long a copy is kept to answer while HubSpot cannot
FILL_WAIT_S = 10.0
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3", "tickets": "0-5"}
# HubSpot-defined association type ids from an engagement to the record it belongs to.
ASSOCIATION_TYPE_IDS = {
    ("notes", "contacts"): 202,
    ("notes", "companies"): 190,
    ("notes", "deals"): 214,
    ("notes", "tickets"): 228,
    ("tasks", "contacts"): 204,
    ("tasks", "companies"): 192,
    ("tasks", "deals"): 216,
    ("tasks", "tickets"): 230,
}


class HubSpotError(Exception):
    """A HubSpot answer hsgate cannot use; `message` is HubSpot's own, safe to show (no secrets)."""

    def __init__(self, status: int | None, message: str, category: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def not_found(self) -> bool:
        return self.status == 404


@dataclass(frozen=True)
class HistoryEntry:
    value: str | None
    timestamp: str
    source_type: str | None
    updated_by_user_id: int | None


@dataclass(frozen=True)
class Record:
    object_type: str
    id: str
    properties: dict[str, str | None]
    history: dict[str, list[HistoryEntry]]

    def get(self, name: str) -> str | None:
        return self.properties.get(name)


class RateLimiter:
    """A rolling-window request limit shared by every process that talks to HubSpot.

    HubSpot counts requests over a rolling 10 seconds (TEN_SECONDLY_ROLLING), so this keeps the
    time of each granted request in a Redis sorted set and grants a new one only while fewer than
    `max_requests` fall inside the window; otherwise it sleeps until the oldest one leaves it.
    """

    _ACQUIRE = """
    local now = tonumber(ARGV[1])
    local window = tonumber(ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
    if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
      redis.call('ZADD', KEYS[1], now, ARGV[4])
      redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
      return '0'
    end
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return tostring(tonumber(oldest[2]) + window - now)
    """

    def __init__(self, redis: Redis, max_requests: int, window_s: float = 10.0, key: str = "hsgate:ratelimit:hubspot") -> None:
        self.max_requests = max_requests
        self.window_s = window_s
        self.key = key
        self._script = redis.register_script(self._ACQUIRE)

    def acquire(self) -> None:
        while True:
            wait = float(
                self._script(keys=[self.key], args=[time.time(), self.window_s, self.max_requests, secrets.token_hex(8)])
            )
            if wait <= 0:
                return
            time.sleep(min(max(wait, 0.01), self.window_s))


class HubSpotGateway:
    def __init__(
        self,
        access_token: str,
        host: str,
        redis: Redis,
        rate_limit: int = 90,
        timeout: tuple[float, float] = (3.0, 15.0),
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
        portal_id: str | None = None,
        ui_domain: str = "app.hubspot.com",
    ) -> None:
        client = HubSpot(access_token=access_token, host=host)
        # Each attribute access on the SDK's discovery objects builds a new ApiClient and pool: keep them.
        self._objects = client.crm.objects.basic_api
        self._batch = client.crm.objects.batch_api
        self._properties = client.crm.properties.core_api
        self._pipelines = client.crm.pipelines.pipelines_api
        self._owners = client.crm.owners.owners_api
        self._host = host
        self._access_token = access_token
        self._redis = redis
        self._limiter = RateLimiter(redis, rate_limit)
        self._timeout = timeout
        self._retry_delays = tuple(retry_delays)
        self._portal_id = portal_id
        self._ui_domain = ui_domain

    # -- transport -------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        for attempt in range(len(self._retry_delays) + 1):
            self._limiter.acquire()
            try:
                return fn(*args, _request_timeout=self._timeout, **kwargs)
            except API_EXCEPTIONS as raw:
                error = _api_error(raw)
            except TRANSPORT_ERRORS as raw:
                error = HubSpotError(None, f"HubSpot could not be reached ({type(raw).__name__})")
            if not error.retryable or attempt == len(self._retry_delays):
                raise error
            log.warning("HubSpot %s failed (%s), retrying", what, error.status or "transport")
            time.sleep(self._retry_delays[attempt])
        raise AssertionError("unreachable")

    # -- records ---------------------------------------------------------------------------------

    def read(self, object_type: str, record_id: str, properties: Iterable[str], with_history: Iterable[str] = ()) -> Record:
        raw = self._call(
            "read",
            self._objects.get_by_id,
            object_type,
            record_id,
            properties=sorted(set(properties)),
            properties_with_history=sorted(set(with_history)) or None,
        )
        return _record(object_type, raw)

    def read_many(self, object_type: str, record_ids: Sequence[str], properties: Iterable[str]) -> dict[str, Record]:
        """Read records 100 to a call; ids HubSpot does not know are left out of the answer."""
        wanted = sorted(set(properties))
        records: dict[str, Record] = {}
        for start in range(0, len(record_ids), BATCH_SIZE):
            chunk = record_ids[start : start + BATCH_SIZE]
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=rid) for rid in chunk], properties=wanted, properties_with_history=[]
            )
            answer = self._call("batch read", self._batch.read, object_type, batch_read_input_simple_public_object_id=body)
            records.update({raw.id: _record(object_type, raw) for raw in answer.results})
        return records

    def update(self, object_type: str, record_id: str, properties: dict[str, str]) -> Record:
        raw = self._call(
            "update",
            self._objects.update,
            object_type,
            record_id,
            simple_public_object_input=SimplePublicObjectInput(properties=properties),
        )
        return _record(object_type, raw)

    def create_engagement(self, kind: str, properties: dict[str, str], object_type: str, record_id: str) -> str:
        """Create a note or task associated with the record; returns its id."""
        association = PublicAssociationsForObject(
            to=PublicObjectId(id=record_id),
            types=[
                AssociationSpec(
                    association_category="HUBSPOT_DEFINED", association_type_id=ASSOCIATION_TYPE_IDS[(kind, object_type)]
                )
            ],
        )
        body = SimplePublicObjectInputForCreate(properties=properties, associations=[association])
        raw = self._call("create", self._objects.create, kind, simple_public_object_input_for_create=body)
        return str(raw.id)

    def archive(self, object_type: str, record_id: str) -> None:
        self._call("archive", self._objects.archive, object_type, record_id)

    def record_url(self, object_type: str, record_id: str) -> str:
        domain, portal = self._account()
        return f"https://{domain}/contacts/{portal}/record/{OBJECT_TYPE_IDS[object_type]}/{record_id}"

    # -- schema ----------------------------------------------------------------------------------

    def schema(self, object_type: str, allow_stale: bool = False) -> Schema:
        """Properties, pipelines and owners. `allow_stale` answers from any cached copy without calling
        HubSpot (for Slack handlers, which must answer within 3 seconds); workers keep the copy fresh."""
        properties = self._cached(f"properties:{object_type}", lambda: self._fetch_properties(object_type), allow_stale)
        pipelines = (
            self._cached(f"pipelines:{object_type}", lambda: self._fetch_pipelines(object_type), allow_stale)
            if object_type in ("deals", "tickets")
            else []
        )
        return Schema(
            object_type=object_type,
            properties={p["name"]: _property_def(p) for p in properties},
            pipelines=tuple(_pipeline(p) for p in pipelines),
            owners=self.owners(allow_stale),
        )

    def owners(self, allow_stale: bool = False) -> dict[str, Owner]:
        raw = self._cached("owners", self._fetch_owners, allow_stale)
        return {o["id"]: Owner(**(o | {"team_ids": tuple(o.get("team_ids", ()))})) for o in raw}

    def owner(self, owner_id: str) -> Owner | None:
        """An owner by id; an id newer than the cache refreshes it once."""
        found = self.owners().get(owner_id)
        if found is None:
            self._redis.delete(_cache_key("owners"))
            found = self.owners().get(owner_id)
        return found

    def _cached(self, name: str, fetch: Callable[[], list[dict[str, Any]]], allow_stale: bool = False) -> list[dict[str, Any]]:
        """Read through the Redis cache, shared by every process.

        A copy older than SCHEMA_FRESH_S is refreshed by one process while the others use it; a
        cold cache is filled by one process while the others wait. When HubSpot cannot answer, an
        old copy still serves: labels and options change rarely, and HubSpot checks every write.
        """
        key = _cache_key(name)
        deadline = time.monotonic() + FILL_WAIT_S
        while True:
            raw = self._redis.get(key)
            copy = json.loads(raw) if raw is not None else None
            if copy is not None and (allow_stale or time.time() - copy["at"] < SCHEMA_FRESH_S):
                return list(copy["data"])
            if self._redis.set(f"{key}:filling", "1", nx=True, ex=int(FILL_WAIT_S) + 1) or time.monotonic() > deadline:
                return self._refill(key, fetch, copy)
            if copy is not None:
                return list(copy["data"])  # another process is refreshing it
            time.sleep(0.05)

    def _refill(self, key: str, fetch: Callable[[], list[dict[str, Any]]], copy: dict[str, Any] | None) -> list[dict[str, Any]]:
        try:
            fresh = fetch()
        except HubSpotError:
            if copy is None:
                raise
            log.warning("HubSpot did not answer; using the cached %s from %.0f s ago", key, time.time() - copy["at"])
            return list(copy["data"])
        finally:
            self._redis.delete(f"{key}:filling")
        self._redis.set(key, json.dumps({"at": time.time(), "data": fresh}), ex=SCHEMA_KEEP_S)
        return fresh

    def _fetch_properties(self, object_type: str) -> list[dict[str, Any]]:
        answer = self._call("properties", self._properties.get_all, object_type)
        return [
            {
                "name": p.name,
                "label": p.label,
                "type": p.type,
                "field_type": p.field_type,
                "options": [[o.value, o.label] for o in (p.options or []) if not o.hidden],
                "read_only": bool(p.modification_metadata and p.modification_metadata.read_only_value),
                "calculated": bool(p.calculated),
                "external_options": bool(p.external_options),
            }
            for p in answer.results
        ]

    def _fetch_pipelines(self, object_type: str) -> list[dict[str, Any]]:
        answer = self._call("pipelines", self._pipelines.get_all, object_type)
        return [
            {
                "id": p.id,
                "label": p.label,
                "stages": [
                    {
                        "id": s.id,
                        "label": s.label,
                        "display_order": s.display_order,
                        "closed": (s.metadata or {}).get("isClosed") == "true"
                        or (s.metadata or {}).get("ticketState") == "CLOSED",
                    }
                    for s in p.stages
                    if not s.archived
                ],
            }
            for p in answer.results
            if not p.archived
        ]

    def _fetch_owners(self) -> list[dict[str, Any]]:
        owners: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self._call("owners", self._owners.get_page, limit=100, after=after)
            owners += [
                {
                    "id": o.id,
                    "email": o.email,
                    "first_name": o.first_name,
                    "last_name": o.last_name,
                    "user_id": o.user_id,
                    # the primary team first: it decides routing when an owner is in several
                    "team_ids": [t.id for t in sorted(o.teams or [], key=lambda t: not t.primary)],
                }
                for o in page.results
            ]
            if not (page.paging and page.paging.next):
                return owners
            after = page.paging.next.after

    def _account(self) -> tuple[str, str]:
        """The UI domain and portal id for record links (a setting, else HubSpot's account-info)."""
        if self._portal_id:
            return self._ui_domain, self._portal_id
        raw = self._cached("account", self._fetch_account)[0]
        return raw["uiDomain"], str(raw["portalId"])

    def _fetch_account(self) -> list[dict[str, Any]]:
        def get(_request_timeout: tuple[float, float]) -> dict[str, Any]:
            answer = requests.get(
                f"{self._host}/account-info/v3/details",
                headers={"Authorization": f"Bearer {self._access_token}"},
                timeout=_request_timeout,
            )
            if answer.status_code != 200:
                raise HubSpotError(answer.status_code, _message(answer.text))
            return answer.json()

        return [self._call("account info", get)]


def _cache_key(name: str) -> str:
    return f"hsgate:cache:hubspot:{name}"


def _api_error(raw: Exception) -> HubSpotError:
    status = getattr(raw, "status", None)
    body = getattr(raw, "body", None) or ""
    category = None
    try:
        category = json.loads(body).get("category")
    except (ValueError, AttributeError):
        pass
    return HubSpotError(status, _message(body) or f"HubSpot answered {status}", category)


def _message(body: str) -> str:
    """HubSpot's message, with the per-property details of a validation error when it gives them."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body[:300]
    if not isinstance(parsed, dict):
        return body[:300]
    details = [str(e["message"]) for e in parsed.get("errors") or [] if isinstance(e, dict) and e.get("message")]
    return "; ".join(details) if details else str(parsed.get("message", ""))[:500]


def _record(object_type: str, raw: Any) -> Record:
    history = {
        name: [
            HistoryEntry(
                value=entry.value,
                timestamp=entry.timestamp.isoformat() if hasattr(entry.timestamp, "isoformat") else str(entry.timestamp),
                source_type=entry.source_type,
                updated_by_user_id=entry.updated_by_user_id,
            )
            for entry in entries
        ]
        for name, entries in (getattr(raw, "properties_with_history", None) or {}).items()
    }
    return Record(object_type=object_type, id=str(raw.id), properties=dict(raw.properties or {}), history=history)


def _property_def(raw: dict[str, Any]) -> PropertyDef:
    return PropertyDef(
        name=raw["name"],
        label=raw["label"],
        type=raw["type"],
        field_type=raw["field_type"],
        options=tuple(Option(value, label) for value, label in raw["options"]),
        read_only=raw["read_only"],
        calculated=raw["calculated"],
        external_options=raw["external_options"],
    )


def _pipeline(raw: dict[str, Any]) -> Pipeline:
    stages = sorted(raw["stages"], key=lambda s: s["display_order"])
    return Pipeline(id=raw["id"], label=raw["label"], stages=tuple(Stage(**s) for s in stages))
