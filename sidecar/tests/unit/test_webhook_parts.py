"""The webhook receiver's pure parts: the secret, the replay digest, what may be shown."""

from __future__ import annotations

import json

import pytest

from qalita_sidecar.hosts.webhook import (
    Request,
    SecretError,
    SharedSecret,
    body_digest,
    is_loopback,
    redact_url,
)

GOOD = "0123456789abcdef-XYZ"


def request(tail: str = "", token: list[str] | None = None) -> Request:
    return Request("POST", "/airbyte/webhook" + tail, {"token": token} if token else {}, {},
                   b"{}", tail, "/airbyte/webhook")


def test_the_secret_is_taken_from_the_path_or_the_token():
    secret = SharedSecret(GOOD, "test")
    assert secret.carried_by(request(f"/{GOOD}"))
    assert secret.carried_by(request(f"/{GOOD}/"))
    assert secret.carried_by(request("", [GOOD]))
    assert secret.carried_by(request("/something-else", [GOOD]))
    assert not secret.carried_by(request())
    assert not secret.carried_by(request("/" + GOOD[:-1]))
    assert not secret.carried_by(request("", [GOOD + "0"]))
    assert not secret.carried_by(request("/é" + GOOD))  # not ASCII: no error, no match


def test_the_secret_file_and_variable(tmp_path):
    path = tmp_path / "secret"
    path.write_text(GOOD + "\n")
    assert SharedSecret.load(path, "X_SECRET", env={"X_SECRET": "ignored-when-a-file-is-given"}
                             ).value == GOOD
    assert SharedSecret.load(None, "X_SECRET", env={"X_SECRET": GOOD}).origin == "X_SECRET"
    assert SharedSecret.load(None, "X_SECRET", env={}) is None
    path.write_text("\n")
    with pytest.raises(SecretError, match=f"^--secret-file {path}: the file is empty$"):
        SharedSecret.load(path, "X_SECRET", env={})
    with pytest.raises(SecretError, match="cannot read"):
        SharedSecret.load(tmp_path / "nope", "X_SECRET", env={})


@pytest.mark.parametrize("value, why", [("abc12", "shorter than 16"),
                                        ("has/a/slash-0123456", "only letters, digits"),
                                        ("with space 0123456789", "only letters, digits")])
def test_a_secret_unfit_for_a_url_is_refused_without_showing_it(value, why):
    with pytest.raises(SecretError, match=why) as info:
        SharedSecret(value, "X_SECRET")
    assert value not in str(info.value) and str(info.value).startswith("X_SECRET: ")


def test_the_digest_ignores_key_order_and_spacing_but_not_content():
    body = {"data": {"jobId": 1, "success": True, "x": [1, 2]}}
    raw = json.dumps(body).encode()
    other = json.dumps(body, sort_keys=True, indent=4).encode()
    assert body_digest(raw, json.loads(raw)) == body_digest(other, json.loads(other))
    changed = {"data": {"jobId": 1, "success": False, "x": [1, 2]}}
    assert body_digest(raw, body) != body_digest(raw, changed)


def test_urls_are_shown_without_credentials():
    assert redact_url("https://user:pass@qalita.example:8443/api?token=abc&x=1") == \
        "https://***@qalita.example:8443/api?token=***&x=***"
    assert redact_url("https://qalita.example/api") == "https://qalita.example/api"
    assert redact_url(None) is None


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.5.0.1", True), ("::1", True),
                                        ("localhost", True), ("0.0.0.0", False),
                                        ("10.0.0.1", False), ("example.org", False)])
def test_loopback_hosts(host, loop):
    assert is_loopback(host) is loop
