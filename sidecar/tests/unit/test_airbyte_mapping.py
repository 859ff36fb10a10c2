"""Airbyte webhook events -> Shipment (pure)."""

from __future__ import annotations

import pytest
from support.airbyte_events import CONNECTION, guide_event, notification

from qalita_sidecar.readers.airbyte import (
    AirbyteEventError,
    parse_event,
    sync_key,
    sync_to_shipment,
)


def metrics(shipment):
    return {(m.scope.perimeter, m.scope.value, m.key): m.value for m in shipment.metrics}


def test_airbyte_notification_success():
    sync = parse_event(notification())
    assert (sync.connection_id, sync.job_id, sync.attempt, sync.status) == \
        (CONNECTION, "4242", None, "succeeded")
    s = sync_to_shipment(sync)
    m = metrics(s)
    conn = "shopify to warehouse"
    assert m[("database", conn, "records_emitted")] == 1000
    assert m[("database", conn, "records_committed")] == 1000
    assert m[("database", conn, "bytes_emitted")] == 123456
    assert m[("database", conn, "bytes_committed")] == 123456
    assert m[("database", conn, "duration_seconds")] == 150
    assert m[("database", conn, "sync_status")] == "succeeded"
    assert s.recommendations == ()
    assert (s.job.started_at, s.job.finished_at, s.job.status) == \
        ("2026-04-01 06:00:00", "2026-04-01 06:02:30", "succeeded")
    assert s.job.name == "airbyte sync shopify to warehouse (job 4242)"
    assert s.context.mapping_keys == (CONNECTION,)  # the config's connection_map is keyed so
    assert [(e.key, e.value) for e in s.schemas] == [("database", conn)]


def test_failed_sync_is_a_failed_job_with_a_high_recommendation():
    s = sync_to_shipment(parse_event(notification(success=False, recordsCommitted=0)))
    assert s.job.status == "failed"
    assert metrics(s)[("database", "shopify to warehouse", "sync_status")] == "failed"
    [rec] = s.recommendations
    assert (rec.level, rec.type) == ("high", "Sync Failed")
    assert rec.content == ("Airbyte sync of connection shopify to warehouse (job 4242) failed: "
                           "Source Shopify: HTTP 401 from the API")


def test_guide_payload_with_catalog_millis_and_attempt():
    sync = parse_event(guide_event())
    assert (sync.job_id, sync.attempt, sync.duration_s) == ("1234", "1", 123.0)
    s = sync_to_shipment(sync)
    assert (s.job.started_at, s.job.finished_at) == ("2024-05-23 16:00:00", "2024-05-23 16:02:03")
    conn = f"airbyte-{CONNECTION}"  # no connection name in this payload
    m = metrics(s)
    assert m[("database", conn, "records_committed")] == 102930
    assert ("database", conn, "bytes_committed") not in m  # not in the event: not invented
    types = {(m.scope.parent.value, m.scope.value): m.value for m in s.metrics
             if m.key == "data_type"}
    assert types == {("orders", "id"): "string", ("orders", "created_at"): "string(date-time)",
                     ("orders", "total_price"): "number", ("customers", "id"): "integer",
                     ("customers", "email"): "string"}
    schemas = [(e.key, e.value) for e in s.schemas]
    assert schemas[:3] == [("database", conn), ("dataset", "orders"), ("column", "id")]
    assert ("dataset", "customers") in schemas and len(schemas) == 8
    # committed fewer than emitted on a successful sync: worth a look
    [rec] = s.recommendations
    assert rec.level == "warning" and "committed 102930 of 102934 records" in rec.content


def test_a_replayed_event_has_the_same_key_another_attempt_or_job_not():
    assert sync_key(parse_event(notification())) == sync_key(parse_event(notification()))
    assert sync_key(parse_event(notification(job_id=4243))) != sync_key(parse_event(notification()))
    first = parse_event(guide_event())
    assert sync_key(parse_event(guide_event(attempt__number=2))) != sync_key(first)
    assert sync_key(parse_event(notification(connection="other"))) != \
        sync_key(parse_event(notification()))


@pytest.mark.parametrize("body, message", [
    ([1, 2], "JSON object"),
    ({"data": {"jobId": 1}}, "no connection id"),
    ({"connection": {"connectionId": "c"}}, "no job id"),
    (notification(startedAt="yesterday"), "unreadable start/end timestamp"),
])
def test_unusable_events(body, message):
    with pytest.raises(AirbyteEventError, match=message):
        parse_event(body)
