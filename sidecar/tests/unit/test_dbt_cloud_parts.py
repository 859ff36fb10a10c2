"""The pure parts of the dbt Cloud path: steps, run and event payloads, settings, retry policy,
the webhook signature."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import requests

from qalita_sidecar.hosts.dbt_cloud_server import DbtCloudReceiver
from qalita_sidecar.hosts.webhook import Request
from qalita_sidecar.readers.dbt.cloud import (
    CloudSettings,
    DbtCloudClient,
    DbtCloudError,
    DbtCloudUnavailable,
    Step,
    cloud_settings,
    parse_event,
    parse_run,
)
from qalita_sidecar.readers.dbt.cloud_run import step_kind
from qalita_sidecar.settings import SettingsError


@pytest.mark.parametrize(("name", "kind"), [
    ("Clone git repository", "none"),
    ("Create profile from connection Snowflake", "none"),
    ("Invoke dbt with `dbt deps`", "none"),
    ("Invoke dbt with `dbt build --select tag:x`", "results"),
    ("Invoke dbt with `dbt  run`", "results"),
    ("Invoke dbt with `dbt test`", "results"),
    ("Invoke dbt with `dbt seed`", "results"),
    ("Invoke dbt with `dbt snapshot`", "results"),
    ("Invoke dbt with `dbt source freshness`", "freshness"),
    ("Invoke dbt with `dbt source snapshot-freshness`", "freshness"),
    ("Invoke dbt with `dbt docs generate`", "none"),
    ("Invoke dbt with `dbt compile`", "none"),
    ("Invoke dbt with `dbt run-operation grant`", "none"),
    ("Invoke dbt with `dbt sl list metrics`", "judge"),
])
def test_step_kind_from_its_name(name, kind):
    assert step_kind(Step(4, name, 10, "Success"))[0] == kind


def test_a_run_payload_is_read_with_its_steps_and_target():
    run = parse_run({
        "id": 12, "account_id": 1, "job_definition_id": 9, "status": 20,
        "status_humanized": "Error", "git_sha": "abc", "environment_id": "3",
        "run_steps": [{"index": 5, "name": "Invoke dbt with `dbt docs generate`", "status": 10},
                      {"index": 4, "name": "Invoke dbt with `dbt build`", "status": 20},
                      {"name": "no index"}],
        "job": {"name": "Daily", "settings": {"target_name": "prod"}}}, account_id=1)
    assert [s.index for s in run.steps] == [4, 5]
    assert (run.job_id, run.target_name, run.git_sha, run.status_name, run.finished) == \
        (9, "prod", "abc", "error", True)
    assert run.steps[0].label == "step 4 (`dbt build`)" and run.steps[1].dbt_command == "docs generate"
    with pytest.raises(DbtCloudError, match="no id or status"):
        parse_run({"id": 1}, account_id=1)


def test_an_event_payload_names_its_run():
    event = parse_event({"accountId": 1, "eventId": "wev_1", "eventType": "job.run.completed",
                         "data": {"runId": "12345", "jobId": "123", "runStatusCode": 10}})
    assert (event.account_id, event.run_id, event.job_id, event.name) == (1, 12345, 123, "1-12345")
    for body, reason in (([], "not a JSON object"), ({"eventType": "x", "data": {}}, "eventType"),
                         ({"eventType": "job.run.completed"}, "no 'data'"),
                         ({"eventType": "job.run.completed", "data": {}}, "runId")):
        with pytest.raises(DbtCloudError, match=reason):
            parse_event(body)


def test_settings_name_what_is_wrong_and_never_the_token(tmp_path):
    env = {"DBT_CLOUD_API_TOKEN": "dbtc_secret_value", "DBT_CLOUD_ACCOUNT_ID": "7"}
    settings = cloud_settings(env)
    assert (settings.base_url, settings.account_id) == ("https://cloud.getdbt.com", 7)
    assert "dbtc_secret_value" not in repr(settings)
    assert cloud_settings(env, base_url="https://emea.dbt.com/api/v2/").base_url == \
        "https://emea.dbt.com"
    with pytest.raises(SettingsError, match="DBT_CLOUD_ACCOUNT_ID: expected a number"):
        cloud_settings({**env, "DBT_CLOUD_ACCOUNT_ID": "abc"})
    with pytest.raises(SettingsError, match="--base-url 'ftp://x'"):
        cloud_settings(env, base_url="ftp://x")
    with pytest.raises(SettingsError, match="the file is empty"):
        (tmp_path / "t").write_text("\n")
        cloud_settings(env, token_file=tmp_path / "t")


class _Answers(requests.Session):
    """A session answering from a list: an int is a status, an exception is raised."""

    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)
        self.sent = []

    def get(self, url, **kwargs):  # type: ignore[override]
        self.sent.append((url, kwargs))
        item = self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        response = requests.Response()
        response.status_code = item
        response._content = json.dumps({"data": {"id": 5, "status": 10, "run_steps": []}}
                                        ).encode() if item == 200 else b"{}"
        return response


def _client(answers, deadline=60.0):
    now = [0.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    session = _Answers(answers)
    client = DbtCloudClient(CloudSettings("https://x.example", 1, "tok", deadline_s=deadline),
                            session=session, clock=lambda: now[0], sleep=sleep,
                            rand=lambda: 0.0)
    return client, session, sleeps


def test_retries_429_5xx_and_connection_errors_with_backoff_then_succeeds():
    client, session, sleeps = _client([503, 429, requests.ConnectionError("down"), 500, 200])
    assert client.run(5).id == 5
    assert sleeps == [0.25, 0.5, 1.0, 2.0]  # equal jitter with rand 0: half of 0.5 * 2**n
    url, kwargs = session.sent[-1]
    assert url == "https://x.example/api/v2/accounts/1/runs/5/"
    assert kwargs["params"] == {"include_related": '["run_steps", "job"]'}


def test_gives_up_at_the_deadline_and_refused_tokens_are_not_retried():
    client, _, sleeps = _client([503] * 50, deadline=5.0)
    with pytest.raises(DbtCloudUnavailable, match="5 s deadline"):
        client.run(5)
    assert sum(sleeps) < 5.0
    client, session, _ = _client([401])
    with pytest.raises(DbtCloudError, match="DBT_CLOUD_API_TOKEN was refused") as exc:
        client.run(5)
    assert "tok" not in str(exc.value).replace("token", "") and len(session.sent) == 1
    client, _, _ = _client([400])
    with pytest.raises(DbtCloudError, match="answered 400"):
        client.run(5)


def test_the_webhook_signature_is_the_hmac_of_the_raw_body():
    receiver = DbtCloudReceiver("s3cret-s3cret-s3cret", "tok")
    body = b'{"eventType": "job.run.completed"}'
    good = hmac.new(b"s3cret-s3cret-s3cret", body, hashlib.sha256).hexdigest()

    def request(auth):
        headers = {"authorization": auth} if auth is not None else {}
        return Request("POST", "/dbt-cloud/webhook", {}, headers, body, "", "/dbt-cloud/webhook")

    assert receiver.authenticate(request(good))
    for bad in (None, "", good.upper(), good[:-1], "Token " + good, "é" * 64):
        assert not receiver.authenticate(request(bad))
