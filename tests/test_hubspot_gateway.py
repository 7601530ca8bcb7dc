"""The HubSpot gateway: batching, caching, pacing and errors, against the emulator."""

from __future__ import annotations

import json
import time

import pytest

from app.hubspot import HubSpotError, RateLimiter
from tests.conftest import Gate


def requests_to(gate: Gate, fragment: str) -> int:
    return len([r for r in gate.hubspot.requests if fragment in r.path])


def test_records_are_read_a_hundred_to_a_call(gate: Gate) -> None:
    for n in range(250):
        gate.hubspot.add_record("contacts", str(50000 + n), {"firstname": f"P{n}"})

    records = gate.rt.hubspot.read_many("contacts", [str(50000 + n) for n in range(250)], ["firstname"])

    assert len(records) == 250
    assert records["50249"].get("firstname") == "P249"
    assert [len(r.body["inputs"]) for r in gate.hubspot.requests if r.path.endswith("/batch/read")] == [100, 100, 50]


def test_unknown_ids_are_left_out_of_a_batch_read(gate: Gate) -> None:
    records = gate.rt.hubspot.read_many("deals", ["1001", "424242"], ["dealname"])

    assert list(records) == ["1001"]


def test_the_schema_is_read_once_and_then_served_from_redis(gate: Gate) -> None:
    gate.rt.hubspot.schema("deals")
    gate.rt.hubspot.schema("deals")

    assert requests_to(gate, "/crm/v3/properties/deals") == 1
    assert requests_to(gate, "/crm/v3/pipelines/deals") == 1
    assert requests_to(gate, "/crm/v3/owners") == 1


def test_an_owner_newer_than_the_cache_refreshes_it_once(gate: Gate) -> None:
    gate.rt.hubspot.owners()
    gate.hubspot.add_owner("1009", "new@example.com", "Nia", "New", 9009)

    owner = gate.rt.hubspot.owner("1009")

    assert owner is not None and owner.name == "Nia New"
    assert requests_to(gate, "/crm/v3/owners") == 2


def test_a_4xx_is_not_retried_and_carries_hubspots_message(gate: Gate) -> None:
    with pytest.raises(HubSpotError) as raised:
        gate.rt.hubspot.update("deals", "1001", {"no_such_property": "x"})

    assert raised.value.status == 400
    assert raised.value.category == "VALIDATION_ERROR"
    assert "no_such_property" in raised.value.message
    assert requests_to(gate, "/crm/v3/objects/deals/1001") == 1


def test_a_401_says_so_without_the_token(gate: Gate) -> None:
    gate.hubspot.token = "another-token"
    try:
        with pytest.raises(HubSpotError) as raised:
            gate.rt.hubspot.read("deals", "1001", ["dealname"])
    finally:
        gate.hubspot.token = "pat-test-token"

    assert raised.value.status == 401
    assert "pat-test-token" not in str(raised.value)


def test_the_rate_limiter_never_grants_more_than_the_limit_in_any_rolling_window(gate: Gate) -> None:
    limiter = RateLimiter(gate.rt.redis, max_requests=3, window_s=0.5, key="hsgate:test:limiter")
    granted = []

    for _ in range(7):
        limiter.acquire()
        granted.append(time.time())

    assert all(granted[i + 3] - granted[i] >= 0.5 - 0.01 for i in range(len(granted) - 3))


def test_record_links_use_the_accounts_ui_domain_and_portal(gate: Gate) -> None:
    assert gate.rt.hubspot.record_url("tickets", "4001") == "https://app-eu1.hubspot.com/contacts/4242424/record/0-5/4001"


def age_cache(gate: Gate, seconds: float) -> None:
    for key in gate.rt.redis.scan_iter("hsgate:cache:hubspot:*"):
        copy = json.loads(gate.rt.redis.get(key))
        copy["at"] -= seconds
        gate.rt.redis.set(key, json.dumps(copy))


def test_an_old_schema_copy_is_read_again_by_a_worker(gate: Gate) -> None:
    gate.rt.hubspot.schema("deals")
    age_cache(gate, 600)

    gate.rt.hubspot.schema("deals")

    assert requests_to(gate, "/crm/v3/properties/deals") == 2


def test_an_old_schema_copy_answers_handlers_without_calling_hubspot(gate: Gate) -> None:
    gate.rt.hubspot.schema("deals")
    age_cache(gate, 600)

    schema = gate.rt.hubspot.schema("deals", allow_stale=True)

    assert schema.label("dealstage") == "Deal Stage"
    assert requests_to(gate, "/crm/v3/properties/deals") == 1


def test_an_old_schema_copy_still_serves_while_hubspot_is_down(gate: Gate) -> None:
    gate.rt.hubspot.schema("deals")
    age_cache(gate, 600)
    gate.hubspot.fail_next(503, count=20)

    assert gate.rt.hubspot.schema("deals").label("amount") == "Amount"
