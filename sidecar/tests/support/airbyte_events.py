"""Airbyte webhook bodies in both shapes the sidecar reads."""

from __future__ import annotations

import copy
from typing import Any

CONNECTION = "7f3c1c7e-2a51-4b0e-9d55-0c7d1f1a2b3c"


def notification(job_id: int = 4242, success: bool = True, connection: str = CONNECTION,
                 **data: Any) -> dict[str, Any]:
    """Airbyte's sync notification webhook (success or failure)."""
    body = {
        "data": {
            "workspace": {"id": "ws-1", "name": "Retail", "url": "http://airbyte/ws-1"},
            "connection": {"id": connection, "name": "shopify to warehouse",
                           "url": f"http://airbyte/connections/{connection}"},
            "source": {"id": "src-1", "name": "Shopify"},
            "destination": {"id": "dst-1", "name": "Warehouse"},
            "jobId": job_id,
            "success": success,
            "startedAt": "2026-04-01T06:00:00Z",
            "finishedAt": "2026-04-01T06:02:30Z",
            "bytesEmitted": 123456, "bytesCommitted": 123456,
            "recordsEmitted": 1000, "recordsCommitted": 1000,
            "durationInSeconds": 150,
            "durationFormatted": "2 min 30 sec",
            "errorMessage": None if success else "Source Shopify: HTTP 401 from the API",
        }
    }
    body["data"].update(data)
    return body


GUIDE_EVENT: dict[str, Any] = {
    "connection": {"connectionId": CONNECTION},
    "job": {"id": 1234, "status": "succeeded", "startedAt": 1716480000000,
            "endedAt": 1716480123000, "name": "Daily sync: shopify to warehouse"},
    "attempt": {"number": 1, "status": "succeeded", "startedAt": 1716480000000,
                "endedAt": 1716480123000,
                "totalStats": {"recordsEmitted": 102934, "bytesEmitted": 123456789,
                               "recordsCommitted": 102930}},
    "catalog": {"streams": [
        {"name": "orders", "jsonSchema": {"type": "object", "properties": {
            "id": {"type": ["string", "null"]},
            "created_at": {"type": ["string", "null"], "format": "date-time"},
            "total_price": {"type": ["number", "null"]}}}},
        {"stream": {"name": "customers", "jsonSchema": {"properties": {
            "id": {"type": "integer"}, "email": {"type": "string"}}}}},
    ]},
}


def guide_event(**changes: Any) -> dict[str, Any]:
    """The QALITA Airbyte guide's payload (epoch milliseconds, an attempt, the catalog)."""
    body = copy.deepcopy(GUIDE_EVENT)
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return body


# A webhook secret for the tests (the receiver requires one of 16+ URL-safe characters).
SECRET = "test-webhook-secret-8c1d2e"
