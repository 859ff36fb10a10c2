from __future__ import annotations

import json

import pytest

from qalita_sidecar.settings import Ids, SettingsError, load_settings

TOKEN = "eyJhbGciOiJIUzI1NiJ9.secret-token-value"


def test_no_endpoint_means_outbox_only():
    assert load_settings({"QALITA_WORKER_TOKEN": TOKEN}) is None


def test_first_found_wins_across_the_cli_families():
    env = {"QALITA_AGENT_ENDPOINT": "https://agent.example/", "QALITA_BASE_URL": "https://b.example",
           "QALITA_AGENT_TOKEN": TOKEN, "QALITA_AGENT_JOB_SOURCE": "3",
           "QALITA_WORKER_JOB_PACK": "4", "QALITA_AGENT_JOB_PACK_VERSION": "5"}
    s = load_settings(env)
    assert (s.endpoint, s.token, s.source_id, s.pack_id, s.pack_version_id) == (
        "https://agent.example", TOKEN, 3, 4, 5)
    env["QALITA_WORKER_ENDPOINT"] = "https://worker.example"
    env["QALITA_SOURCE_ID"] = "9"
    s = load_settings(env)
    assert (s.endpoint, s.source_id) == ("https://worker.example", 9)


def test_flags_override_the_environment_and_none_flags_do_not():
    env = {"QALITA_WORKER_ENDPOINT": "https://q.example", "QALITA_WORKER_TOKEN": TOKEN,
           "QALITA_PACK_ID": "4"}
    s = load_settings(env, pack_id=8, source_id=None)
    assert (s.pack_id, s.source_id) == (8, None)


def test_token_from_file_and_username_password(tmp_path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    s = load_settings({"QALITA_BASE_URL": "http://q.local", "QALITA_TOKEN_FILE": str(f)})
    assert s.token == TOKEN
    s = load_settings({"QALITA_BASE_URL": "http://q.local", "QALITA_USERNAME": "bot",
                       "QALITA_PASSWORD": "pw-secret"})
    assert (s.token, s.username, s.password) == (None, "bot", "pw-secret")


@pytest.mark.parametrize("env, names", [
    ({"QALITA_WORKER_ENDPOINT": "q.example", "QALITA_WORKER_TOKEN": TOKEN}, "QALITA_WORKER_ENDPOINT"),
    ({"QALITA_WORKER_ENDPOINT": "http://q"}, "QALITA_WORKER_TOKEN"),
    ({"QALITA_WORKER_ENDPOINT": "http://q", "QALITA_WORKER_TOKEN": TOKEN, "QALITA_PACK_ID": "x"}, "QALITA_PACK_ID"),
    ({"QALITA_WORKER_ENDPOINT": "http://q", "QALITA_WORKER_TOKEN": TOKEN, "QALITA_CA_BUNDLE": "/nope.pem"}, "QALITA_CA_BUNDLE"),
    ({"QALITA_WORKER_ENDPOINT": "http://q", "QALITA_TOKEN_FILE": "/nope/token"}, "QALITA_TOKEN_FILE"),
    ({"QALITA_WORKER_ENDPOINT": "http://q", "QALITA_WORKER_TOKEN": TOKEN, "QALITA_DEADLINE": "-1"}, "QALITA_DEADLINE"),
    ({"QALITA_WORKER_ENDPOINT": "http://q", "QALITA_WORKER_TOKEN": TOKEN, "QALITA_DEADLINE": "inf"}, "QALITA_DEADLINE"),
    ({"QALITA_WORKER_ENDPOINT": "http://q", "QALITA_WORKER_TOKEN": TOKEN, "QALITA_TIMEOUT": "nan"}, "QALITA_TIMEOUT"),
    ({"QALITA_WORKER_ENDPOINT": "http://q", "QALITA_WORKER_TOKEN": TOKEN, "QALITA_MAPPING_FILE": "/nope.json"}, "QALITA_MAPPING_FILE"),
])
def test_bad_settings_get_one_line_naming_the_setting(env, names):
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    message = str(err.value)
    assert names in message and "\n" not in message and TOKEN not in message


def test_tls_verified_by_default_ca_bundle_and_opt_out(tmp_path):
    base = {"QALITA_WORKER_ENDPOINT": "https://q", "QALITA_WORKER_TOKEN": TOKEN}
    assert load_settings(base).verify is True
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_settings({**base, "REQUESTS_CA_BUNDLE": str(ca)}).ca_bundle == str(ca)
    assert load_settings({**base, "SKIP_SSL_VERIFY": "true"}).verify is False


def test_skip_ssl_verify_beside_a_ca_bundle_is_never_silently_ignored(tmp_path):
    base = {"QALITA_WORKER_ENDPOINT": "https://q", "QALITA_WORKER_TOKEN": TOKEN,
            "SKIP_SSL_VERIFY": "true"}
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    # the machine-wide requests variable does not override the explicit opt-out
    settings = load_settings({**base, "REQUESTS_CA_BUNDLE": str(ca)})
    assert settings.verify is False and settings.ca_bundle is None
    # QALITA's own CA setting and the opt-out contradict each other: one line naming both
    with pytest.raises(SettingsError) as err:
        load_settings({**base, "QALITA_CA_BUNDLE": str(ca)})
    message = str(err.value)
    assert "SKIP_SSL_VERIFY" in message and "QALITA_CA_BUNDLE" in message and "\n" not in message


def test_secrets_never_in_repr():
    s = load_settings({"QALITA_WORKER_ENDPOINT": "https://q", "QALITA_WORKER_TOKEN": TOKEN,
                       "QALITA_PASSWORD": "pw-secret", "QALITA_USERNAME": "bot"})
    assert TOKEN not in repr(s) and "pw-secret" not in repr(s) and "https://q" in repr(s)


def test_mapping_file_per_project_with_default_and_explicit_ids_winning(tmp_path):
    mapping = tmp_path / "config.json"
    mapping.write_text(json.dumps({
        "connection_map": {"shop/prod": {"source_id": 1, "source_version_id": 11, "pack_id": 2, "pack_version_id": 3},
                           "shop": {"source_id": 4, "pack_id": 5, "pack_version_id": 6}},
        "default": {"pack_id": 7, "pack_version_id": 8}}))
    env = {"QALITA_BASE_URL": "http://q", "QALITA_WORKER_TOKEN": TOKEN, "QALITA_MAPPING_FILE": str(mapping)}
    s = load_settings(env)
    assert s.ids_for(["shop/prod", "shop"]) == Ids(1, 2, 3, 11)
    ids = s.ids_for(["shop/dev", "shop"])
    assert (ids.source_id, ids.pack_id, ids.pack_version_id) == (4, 5, 6)
    ids = s.ids_for(["other"])
    assert (ids.source_id, ids.pack_id, ids.pack_version_id) == (None, 7, 8)
    ids = load_settings({**env, "QALITA_PACK_ID": "70"}).ids_for(["shop"])
    assert ids.pack_id == 70 and ids.pack_version_id == 6
    mapping.write_text(json.dumps({"connection_map": {}}))
    with pytest.raises(SettingsError, match="QALITA_PACK_ID is not set.*config.json has no entry for 'other'"):
        load_settings(env).ids_for(["other"])
