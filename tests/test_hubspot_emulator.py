"""The HubSpot emulator, as the real hubspot-api-client SDK sees it over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hubspot import HubSpot
from hubspot.crm.deals import ApiException as DealsApiException
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
    SimplePublicObjectInput,
)
from hubspot.crm.objects.notes import ApiException as NotesApiException
from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate
from hubspot.crm.tickets import ApiException as TicketsApiException

from tests.emulators.hubspot import TOKEN, HubSpotEmulator


@pytest.fixture(scope="module")
def server() -> Iterator[HubSpotEmulator]:
    emulator = HubSpotEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def emu(server: HubSpotEmulator) -> HubSpotEmulator:
    server.reset()
    return server


@pytest.fixture
def client(emu: HubSpotEmulator) -> HubSpot:
    return HubSpot(access_token=TOKEN, host=emu.url)


def _update(client: HubSpot, deal_id: str, properties: dict[str, str]) -> Any:
    return client.crm.deals.basic_api.update(deal_id, simple_public_object_input=SimplePublicObjectInput(properties=properties))


def _error(client: HubSpot, deal_id: str, properties: dict[str, str]) -> dict[str, Any]:
    with pytest.raises(DealsApiException) as caught:
        _update(client, deal_id, properties)
    assert caught.value.status == 400
    body: dict[str, Any] = json.loads(caught.value.body)
    return body


def test_get_by_id_returns_requested_properties_with_null_for_unset(client: HubSpot) -> None:
    deal = client.crm.deals.basic_api.get_by_id("1003", properties=["dealname", "hubspot_owner_id"])
    assert deal.id == "1003"
    assert deal.properties == {
        "dealname": "Initech pilot",
        "hubspot_owner_id": None,
        "hs_object_id": "1003",
        "createdate": "2025-06-02T09:00:00.000Z",
        "hs_lastmodifieddate": "2025-06-02T09:00:00.000Z",
    }
    assert deal.archived is False


def test_unknown_id_is_404(client: HubSpot) -> None:
    with pytest.raises(DealsApiException) as caught:
        client.crm.deals.basic_api.get_by_id("999")
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["category"] == "OBJECT_NOT_FOUND"


def test_update_records_integration_history_newest_first(client: HubSpot) -> None:
    _update(client, "1001", {"dealstage": "qualifiedtobuy"})
    deal = client.crm.deals.basic_api.get_by_id("1001", properties=["dealstage"], properties_with_history=["dealstage"])
    history = deal.properties_with_history["dealstage"]
    assert deal.properties["dealstage"] == "qualifiedtobuy"
    assert [(h.value, h.source_type, h.source_id) for h in history] == [
        ("qualifiedtobuy", "INTEGRATION", "hsgate"),
        ("appointmentscheduled", "CRM_UI", "userId:9001"),
    ]
    assert deal.updated_at == history[0].timestamp


def test_set_as_user_records_crm_ui_history(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.set_as_user("deals", "1001", "amount", "55000")
    deal = client.crm.deals.basic_api.get_by_id("1001", properties_with_history=["amount"])
    newest = deal.properties_with_history["amount"][0]
    assert (newest.value, newest.source_type, newest.updated_by_user_id) == ("55000", "CRM_UI", 9002)
    assert emu.get_property("deals", "1001", "amount") == "55000"


def test_empty_string_clears_a_value(emu: HubSpotEmulator, client: HubSpot) -> None:
    deal = _update(client, "1001", {"hubspot_owner_id": ""})
    assert deal.properties["hubspot_owner_id"] is None
    assert "hubspot_owner_id" not in emu.record("deals", "1001")


def test_batch_read_answers_207_listing_missing_ids(client: HubSpot) -> None:
    request = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id="1001"), SimplePublicObjectId(id="999")],
        properties=["dealname"],
        properties_with_history=[],
    )
    response = client.crm.deals.batch_api.read(batch_read_input_simple_public_object_id=request)
    assert [r.properties["dealname"] for r in response.results] == ["Acme renewal"]
    assert response.num_errors == 1
    assert (response.errors[0].category, response.errors[0].context) == ("OBJECT_NOT_FOUND", {"ids": ["999"]})


def test_batch_read_refuses_more_than_100_inputs(client: HubSpot) -> None:
    request = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=str(i)) for i in range(101)], properties=[], properties_with_history=[]
    )
    with pytest.raises(DealsApiException) as caught:
        client.crm.deals.batch_api.read(batch_read_input_simple_public_object_id=request)
    assert caught.value.status == 400


def test_batch_update_applies_valid_inputs_and_reports_the_rest(emu: HubSpotEmulator, client: HubSpot) -> None:
    inputs = [
        SimplePublicObjectBatchInput(id="1001", properties={"amount": "60000"}),
        SimplePublicObjectBatchInput(id="1002", properties={"amount": "lots"}),
        SimplePublicObjectBatchInput(id="999", properties={"amount": "1"}),
    ]
    response = client.crm.deals.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(inputs=inputs)
    )
    assert [r.id for r in response.results] == ["1001"]
    assert [(e.category, e.context) for e in response.errors] == [
        ("VALIDATION_ERROR", {"ids": ["1002"]}),
        ("OBJECT_NOT_FOUND", {"ids": ["999"]}),
    ]
    assert (emu.get_property("deals", "1001", "amount"), emu.get_property("deals", "1002", "amount")) == ("60000", "120000")


def test_create_note_associates_it_with_the_deal(emu: HubSpotEmulator, client: HubSpot) -> None:
    association = {"to": {"id": "1001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}
    note = client.crm.objects.notes.basic_api.create(
        SimplePublicObjectInputForCreate(
            properties={"hs_note_body": "Approved", "hs_timestamp": "1767225600000"}, associations=[association]
        )
    )
    assert note.id == "90001"
    assert note.properties["hs_timestamp"] == "2026-01-01T00:00:00Z"
    assert emu.associations("deals", "1001", "notes") == ["90001"]
    deal = client.crm.deals.basic_api.get_by_id("1001", associations=["notes"])
    assert [(a.id, a.type) for a in deal.associations["notes"].results] == [("90001", "deal_to_note")]


def test_create_refuses_an_association_type_of_another_object(client: HubSpot) -> None:
    association = {"to": {"id": "1001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 216}]}
    with pytest.raises(NotesApiException) as caught:
        client.crm.objects.notes.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"hs_note_body": "x"}, associations=[association])
        )
    assert caught.value.status == 400


def test_archive_hides_the_record(emu: HubSpotEmulator, client: HubSpot) -> None:
    client.crm.deals.basic_api.archive("1003")
    assert emu.archived("deals", "1003")
    with pytest.raises(DealsApiException) as caught:
        client.crm.deals.basic_api.get_by_id("1003")
    assert caught.value.status == 404


@pytest.mark.parametrize(
    ("deal_id", "properties", "code"),
    [
        ("1001", {"no_such_thing": "x"}, "PROPERTY_DOESNT_EXIST"),
        ("1001", {"hs_object_id": "5"}, "READ_ONLY_VALUE"),
        ("1001", {"days_to_close": "5"}, "READ_ONLY_VALUE"),
        ("1001", {"dealtype": "bigbusiness"}, "INVALID_OPTION"),
        ("1001", {"dealstage": "renewalopen"}, "INVALID_OPTION"),
        ("1005", {"dealstage": "closedwon"}, "INVALID_OPTION"),
        ("1001", {"hubspot_owner_id": "9001"}, "INVALID_OPTION"),
        ("1001", {"amount": "50k"}, "INVALID_INTEGER"),
        ("1001", {"contract_start": "2026-03-01T10:00:00Z"}, "INVALID_DATE"),
        ("1001", {"closedate": "next week"}, "INVALID_DATE"),
    ],
)
def test_invalid_write_is_a_400_naming_property_and_code(
    client: HubSpot, deal_id: str, properties: dict[str, str], code: str
) -> None:
    body = _error(client, deal_id, properties)
    name = next(iter(properties))
    assert (body["category"], body["message"].startswith("Property values were not valid: ")) == ("VALIDATION_ERROR", True)
    assert [(e["code"], e["context"]) for e in body["errors"]] == [(code, {"propertyName": [name]})]


def test_stage_of_the_pipeline_sent_in_the_same_write_is_accepted(emu: HubSpotEmulator, client: HubSpot) -> None:
    _update(client, "1001", {"pipeline": "renewals", "dealstage": "renewalwon"})
    assert (emu.get_property("deals", "1001", "pipeline"), emu.get_property("deals", "1001", "dealstage")) == (
        "renewals",
        "renewalwon",
    )


def test_date_property_stores_midnight_utc_as_a_date(emu: HubSpotEmulator, client: HubSpot) -> None:
    _update(client, "1001", {"contract_start": "1772323200000"})
    assert emu.get_property("deals", "1001", "contract_start") == "2026-03-01"


def test_ticket_stage_must_belong_to_the_ticket_pipeline(client: HubSpot) -> None:
    with pytest.raises(TicketsApiException) as caught:
        client.crm.tickets.basic_api.update(
            "4001", simple_public_object_input=SimplePublicObjectInput(properties={"hs_pipeline_stage": "closedwon"})
        )
    assert json.loads(caught.value.body)["errors"][0]["code"] == "INVALID_OPTION"


def test_lifecycle_stage_moving_backward_is_silently_ignored(emu: HubSpotEmulator, client: HubSpot) -> None:
    contact = client.crm.contacts.basic_api.update(
        "2001", simple_public_object_input=SimplePublicObjectInput(properties={"lifecyclestage": "lead"})
    )
    assert contact.properties["lifecyclestage"] == "opportunity"
    assert emu.get_property("contacts", "2001", "lifecyclestage") == "opportunity"


def test_lifecycle_stage_cleared_then_set_backward_sticks(emu: HubSpotEmulator, client: HubSpot) -> None:
    for value in ("", "lead"):
        client.crm.contacts.basic_api.update(
            "2001", simple_public_object_input=SimplePublicObjectInput(properties={"lifecyclestage": value})
        )
    assert emu.get_property("contacts", "2001", "lifecyclestage") == "lead"


def test_properties_get_all_describes_types_and_options(client: HubSpot) -> None:
    properties = {p.name: p for p in client.crm.properties.core_api.get_all("deals").results}
    assert (properties["contract_start"].type, properties["closedate"].type) == ("date", "datetime")
    assert [(o.value, o.label) for o in properties["dealtype"].options] == [
        ("newbusiness", "New Business"),
        ("existingbusiness", "Existing Business"),
    ]
    assert (properties["hubspot_owner_id"].external_options, properties["hubspot_owner_id"].referenced_object_type) == (
        True,
        "OWNER",
    )
    assert properties["hs_object_id"].modification_metadata.read_only_value is True
    assert properties["days_to_close"].calculated is True


def test_pipelines_get_all_lists_stages_with_metadata(client: HubSpot) -> None:
    pipelines = client.crm.pipelines.pipelines_api.get_all("deals").results
    assert [p.id for p in pipelines] == ["default", "renewals"]
    closed_won = pipelines[0].stages[5]
    assert (closed_won.id, closed_won.label, closed_won.metadata) == (
        "closedwon",
        "Closed Won",
        {"isClosed": "true", "probability": "1.0"},
    )
    ticket_stages = client.crm.pipelines.pipelines_api.get_all("tickets").results[0].stages
    assert [(s.id, s.metadata["ticketState"]) for s in ticket_stages] == [
        ("1", "OPEN"),
        ("2", "OPEN"),
        ("3", "OPEN"),
        ("4", "CLOSED"),
    ]


def test_owners_get_page_filters_by_email(client: HubSpot) -> None:
    owners = client.crm.owners.owners_api.get_page(email="maria@example.com").results
    assert [(o.id, o.first_name, o.last_name, o.user_id) for o in owners] == [("1001", "Maria", "Lopez", 9001)]
    assert (owners[0].teams[0].name, owners[0].teams[0].primary) == ("EU Sales", True)


def test_owners_get_page_pages_with_after(emu: HubSpotEmulator, client: HubSpot) -> None:
    first = client.crm.owners.owners_api.get_page(limit=2)
    second = client.crm.owners.owners_api.get_page(limit=2, after=first.paging.next.after)
    assert ([o.id for o in first.results], [o.id for o in second.results], second.paging) == (["1001", "1002"], ["1003"], None)


def test_owner_get_by_user_id(client: HubSpot) -> None:
    assert client.crm.owners.owners_api.get_by_id(9003, id_property="userId").email == "nora@example.com"


def test_wrong_token_is_401_invalid_authentication(emu: HubSpotEmulator) -> None:
    with pytest.raises(DealsApiException) as caught:
        HubSpot(access_token="wrong", host=emu.url).crm.deals.basic_api.get_by_id("1001")
    assert caught.value.status == 401
    assert json.loads(caught.value.body)["category"] == "INVALID_AUTHENTICATION"


def test_fail_next_429_answers_the_rate_limit_body(emu: HubSpotEmulator, client: HubSpot) -> None:
    emu.fail_next(429, path_contains="/deals/1001")
    with pytest.raises(DealsApiException) as caught:
        client.crm.deals.basic_api.get_by_id("1001")
    body = json.loads(caught.value.body)
    assert (caught.value.status, body["errorType"], body["policyName"]) == (429, "RATE_LIMIT", "TEN_SECONDLY_ROLLING")
    assert client.crm.deals.basic_api.get_by_id("1001").id == "1001"


def test_fail_next_5xx_counts_down(emu: HubSpotEmulator) -> None:
    emu.fail_next(503, count=2)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    statuses = [httpx.get(f"{emu.url}/crm/v3/objects/deals/1001", headers=headers).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_set_rate_limit_refuses_requests_over_the_window(emu: HubSpotEmulator) -> None:
    emu.set_rate_limit(max_requests=2, interval_s=60)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answers = [httpx.get(f"{emu.url}/crm/v3/pipelines/deals", headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-HubSpot-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "60000"


def test_unknown_route_is_404_with_a_hubspot_body(emu: HubSpotEmulator) -> None:
    answer = httpx.get(f"{emu.url}/crm/v4/nothing", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (answer.status_code, answer.json()["status"]) == (404, "error")
    assert answer.headers["X-HubSpot-RateLimit-Daily"] == "250000"


def test_writes_lists_only_data_changing_requests(emu: HubSpotEmulator, client: HubSpot) -> None:
    client.crm.deals.basic_api.get_by_id("1001")
    _update(client, "1001", {"amount": "1"})
    client.crm.deals.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id="1001")], properties=[], properties_with_history=[]
        )
    )
    assert [(w.method, w.path, w.body) for w in emu.writes()] == [
        ("PATCH", "/crm/v3/objects/deals/1001", {"properties": {"amount": "1"}})
    ]
    assert len(emu.requests) == 3


def test_reset_restores_the_seed(emu: HubSpotEmulator, client: HubSpot) -> None:
    _update(client, "1001", {"amount": "1"})
    emu.fail_next(500)
    emu.reset()
    assert (emu.get_property("deals", "1001", "amount"), emu.requests) == ("50000", [])
    assert client.crm.deals.basic_api.get_by_id("1001").id == "1001"
