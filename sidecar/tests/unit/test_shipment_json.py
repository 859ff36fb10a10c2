from __future__ import annotations

import json

from support.shipments import make_shipment

from qalita_sidecar.shipment import decode_shipment, encode_shipment


def test_round_trip_is_exact_through_json_text():
    shipment = make_shipment(failed=2)
    text = json.dumps(json.loads(encode_shipment(shipment)), ensure_ascii=False)
    back = decode_shipment(text)
    assert back == shipment
    assert back.files() == shipment.files()
    assert isinstance(back.metrics[1].value, int) and isinstance(back.metrics[2].value, float)
    assert back.metrics[0].scope.parent.value == "shop"


def test_files_are_the_bare_arrays_qalita_takes():
    files = make_shipment().files()
    assert set(files) == {"metrics.json", "recommendations.json", "schemas.json"}
    # a column directly under its dataset, as QALITA's packs write it
    assert files["recommendations.json"][0]["scope"] == {
        "perimeter": "column", "value": "amount",
        "parent_scope": {"perimeter": "dataset", "value": "orders"}}
