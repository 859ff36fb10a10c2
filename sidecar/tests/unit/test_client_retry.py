"""The retry rules, on a fake transport and a fake clock (no sleeping, no sockets)."""

from __future__ import annotations

import email.utils
import logging

import pytest
import requests

from qalita_sidecar.settings import Ids, Settings
from qalita_sidecar.shipping.client import (
    AuthFailed,
    Conflict,
    QalitaClient,
    Rejected,
    Unavailable,
    backoff_s,
    parse_retry_after,
)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.never-print-me"
WALL0 = 1_800_000_000.0
IDS = Ids(1, 2, 3)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def wall(self) -> float:
        return WALL0 + self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class FakeSession:
    """Answers from a script: an int status, (status, headers, body), or an exception to raise."""

    def __init__(self, clock: FakeClock, *script) -> None:
        self.script = list(script)
        self.calls: list[dict] = []
        self.clock = clock

    def request(self, method, url, **kw):
        self.calls.append({"method": method, "url": url, **kw})
        self.clock.t += 0.01  # a request takes a little time
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        status, headers, body = item if isinstance(item, tuple) else (item, {}, '{"id": 5}')
        r = requests.Response()
        r.status_code, r._content, r.url = status, body.encode(), url
        r.headers.update(headers)
        prepared = requests.Request(method, url, headers=kw.get("headers")).prepare()
        if kw.get("auth"):
            kw["auth"](prepared)
        self.calls[-1]["prepared"] = prepared
        return r


def make(*script, deadline=60.0, **settings):
    clock = FakeClock()
    session = FakeSession(clock, *script)
    s = Settings(endpoint="https://qalita.example", token=settings.pop("token", TOKEN),
                 deadline_s=deadline, request_timeout_s=settings.pop("timeout", 30.0), **settings)
    client = QalitaClient(s, session=session, clock=clock.clock, sleep=clock.sleep,
                          wall=clock.wall, rand=lambda: 0.5)
    client.begin("key-1")
    return client, session, clock


def test_503_then_200_retries_once_with_jittered_backoff():
    client, session, clock = make(503, (201, {}, '{"id": 42}'))
    assert client.create_job("dbt build", IDS, "2026-01-02 03:04:05") == 42
    assert len(session.calls) == 2
    assert clock.sleeps == [pytest.approx(backoff_s(0, lambda: 0.5))]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retried_statuses(status):
    client, session, _ = make(status, status, 200)
    assert client.upload("metrics", [], IDS) is True
    assert len(session.calls) == 3


def test_429_retry_after_seconds_is_honoured_exactly():
    client, session, clock = make((429, {"Retry-After": "7"}, ""), 200)
    client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert clock.sleeps == [7.0]


def test_429_retry_after_http_date_is_honoured():
    when = email.utils.formatdate(WALL0 + 12, usegmt=True)
    client, session, clock = make((429, {"Retry-After": when}, ""), 200)
    client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert len(clock.sleeps) == 1 and 11.9 <= clock.sleeps[0] <= 12.0


def test_retry_after_zero_or_garbage_falls_back_to_backoff():
    client, session, clock = make((503, {"Retry-After": "0"}, ""), (503, {"Retry-After": "soon"}, ""), 200)
    client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert clock.sleeps == [backoff_s(0, lambda: 0.5), backoff_s(1, lambda: 0.5)]


def test_connection_errors_and_timeouts_are_retried():
    client, session, clock = make(requests.ConnectionError("refused"), requests.ReadTimeout("slow"), 200)
    client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert len(session.calls) == 3 and len(clock.sleeps) == 2
    assert clock.sleeps[1] > clock.sleeps[0]  # exponential


@pytest.mark.parametrize("status, error", [(400, Rejected), (404, Rejected), (422, Rejected),
                                           (401, AuthFailed), (403, AuthFailed),
                                           (408, Unavailable), (500, Unavailable)])
def test_no_retry_on_other_statuses(status, error):
    client, session, clock = make((status, {}, '{"detail": "bad source_id"}'), 200)
    with pytest.raises(error) as err:
        client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert len(session.calls) == 1 and clock.sleeps == []
    assert err.value.status == status
    if error is Rejected:
        assert "bad source_id" in err.value.answer and str(status) in str(err.value)


def test_409_on_upload_means_already_there_but_elsewhere_it_is_kept_not_refused():
    client, session, _ = make(409, 409)
    assert client.upload("schemas", [], IDS) is False
    # a 409 elsewhere is a conflict of the moment: the shipment waits, it never goes to dead/
    with pytest.raises(Conflict) as err:
        client.create_job("x", IDS, "2026-01-02 03:04:05")
    assert not isinstance(err.value, Rejected) and "409" in str(err.value)


def test_deadline_bounds_all_retries():
    client, session, clock = make(*([503] * 100), deadline=10.0)
    with pytest.raises(Unavailable, match="QALITA_DEADLINE") as err:
        client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert clock.t <= 10.0
    assert 3 <= len(session.calls) < 10
    assert "\n" not in str(err.value)
    # each request's timeout never outlives the deadline
    assert all(c["timeout"] <= 10.0 for c in session.calls)


def test_request_timeout_shrinks_to_the_remaining_deadline():
    client, session, clock = make(requests.ConnectTimeout("x"), 200, deadline=5.0, timeout=30.0)
    client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert session.calls[0]["timeout"] == pytest.approx(5.0)
    assert session.calls[1]["timeout"] < 5.0


def test_retry_after_past_the_deadline_gives_up_at_once():
    client, session, clock = make((503, {"Retry-After": "120"}, ""), 200, deadline=30.0)
    with pytest.raises(Unavailable, match="deadline"):
        client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert clock.sleeps == [] and len(session.calls) == 1


def test_deadline_is_per_shipment():
    client, session, clock = make(*([503] * 50), 200, 200, deadline=5.0)
    with pytest.raises(Unavailable):
        client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    session.script = [200]
    client.begin("key-2")
    client.finish_job(5, "2026-01-02 03:05:06", "succeeded")


def test_idempotency_key_and_bearer_on_every_request_and_tls_verified():
    client, session, _ = make(503, 200, (200, {}, "[]"))
    client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    client.upload("metrics", [{"key": "k", "value": 1, "scope": {"perimeter": "dataset", "value": "d"}}], IDS)
    # one key per request, derived from the shipment's: a retry of a request repeats its own
    assert [c["headers"]["Idempotency-Key"] for c in session.calls] == \
        ["key-1:finish", "key-1:finish", "key-1:metrics"]
    for call in session.calls:
        assert call["prepared"].headers["Authorization"] == f"Bearer {TOKEN}"
        assert call["verify"] is True
    upload = session.calls[-1]
    assert upload["params"] == {"source_id": 1, "pack_id": 2, "pack_version_id": 3}
    assert upload["data"] == {"source_id": "1", "pack_id": "2", "pack_version_id": "3"}
    assert upload["files"]["file"][0] == "metrics.json"


def test_ca_bundle_is_passed_to_requests(tmp_path):
    client, session, _ = make(200, ca_bundle="/etc/ssl/private-ca.pem")
    client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert session.calls[0]["verify"] == "/etc/ssl/private-ca.pem"


def test_sign_in_with_username_and_password_then_bearer():
    client, session, _ = make((200, {}, f'{{"access_token": "{TOKEN}"}}'), 200,
                              token=None, username="bot", password="pw-secret")
    client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    signin, put = session.calls
    assert signin["url"].endswith("/api/v1/auth/signin") and signin["data"] == {"username": "bot", "password": "pw-secret"}
    assert put["prepared"].headers["Authorization"] == f"Bearer {TOKEN}"


def test_the_token_is_never_printed(caplog):
    caplog.set_level(logging.DEBUG)
    echo = f'{{"detail": "token Bearer {TOKEN} lacks scope"}}'
    client, session, _ = make(503, (400, {}, echo), (401, {}, echo))
    with pytest.raises(Rejected) as rejected:
        client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    with pytest.raises(AuthFailed) as refused:
        client.finish_job(5, "2026-01-02 03:05:06", "succeeded")
    assert "QALITA_WORKER_TOKEN" in str(refused.value) and "\n" not in str(refused.value)
    for text in (str(rejected.value), rejected.value.answer, str(refused.value), refused.value.answer,
                 repr(client), repr(client.settings), repr(session.calls[0]["auth"]), caplog.text):
        assert TOKEN not in text
    assert "***" in rejected.value.answer


def test_parse_retry_after_forms():
    assert parse_retry_after("3", WALL0) == 3.0
    assert parse_retry_after(email.utils.formatdate(WALL0 + 30, usegmt=True), WALL0) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(WALL0 - 30, usegmt=True), WALL0) == 0.0
    assert parse_retry_after("later", WALL0) is None and parse_retry_after(None, WALL0) is None


def test_backoff_is_exponential_jittered_and_capped():
    assert [backoff_s(n, lambda: 0.0) for n in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert [backoff_s(n, lambda: 1.0) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_s(30, lambda: 1.0) == 30.0
