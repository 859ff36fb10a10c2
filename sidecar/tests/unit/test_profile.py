"""profiles.yml rendered the way dbt renders it, and read errors in one line naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from qalita_sidecar.cli import main
from qalita_sidecar.readers.dbt.profile import ProfileError, load_target, target_name
from qalita_sidecar.readers.dbt.to_shipment import dbt_key

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dbt"

PROFILE = """\
shop:
  target: "{{ env_var('SHOP_TARGET', 'pg') }}"
  outputs:
    pg:
      type: postgres
      host: "{{ env_var('SHOP_HOST', 'localhost') }}"
      port: "{{ env_var('POSTGRES_PORT') | as_number }}"
      user: "{{ env_var('SHOP_USER', 'postgres') | as_text }}"
      password: "{{ env_var('SHOP_PASSWORD', '123') }}"
      dbname: "db_{{ env_var('SHOP_DB', 'shop') }}"
      schema: analytics
      threads: "{{ 4 }}"
      keepalives_idle: "{{ env_var('SHOP_IDLE', '0') | as_number }}"
      sslmode: "{{ env_var('SHOP_SSL', 'prefer') }}"
      retries: "{{ env_var('SHOP_RETRIES', '2') | as_native }}"
      reuse: "{{ env_var('SHOP_REUSE', 'True') | as_bool }}"
      search_path: "{{ env_var('SHOP_PATH', '[1, 2]') | as_native }}"
    local:
      type: duckdb
      path: shop.duckdb
    snow:
      type: snowflake
      account: x
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    (tmp_path / "profiles.yml").write_text(PROFILE)
    for name in ("SHOP_TARGET", "DBT_TARGET", "DBT_PROFILES_DIR", "POSTGRES_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POSTGRES_PORT", "5433")
    return tmp_path


def test_env_var_and_dbts_filters_render_as_dbt_renders_them(project):
    t = load_target(project_dir=project)
    assert (t.target, t.adapter, t.schema) == ("pg", "postgres", "analytics")
    assert t.settings["port"] == 5433  # as_number: a number, not the text "5433"
    assert t.settings["user"] == "postgres" and t.settings["password"] == "123"  # text stays text
    assert t.settings["dbname"] == "db_shop" and t.settings["threads"] == "4"
    assert t.settings["keepalives_idle"] == 0 and t.settings["retries"] == 2
    assert t.settings["reuse"] is True and t.settings["search_path"] == [1, 2]


def test_the_same_values_as_dbts_own_renderer(project, monkeypatch):
    """When dbt is importable here, its ProfileRenderer gives exactly what the sidecar gives."""
    renderer = pytest.importorskip("dbt.config.renderer")
    import os

    import yaml

    try:
        from dbt_common.context import set_invocation_context
    except ImportError:  # dbt < 1.8 reads os.environ directly
        set_invocation_context = None
    if set_invocation_context is not None:
        set_invocation_context(dict(os.environ))
    raw = yaml.safe_load(PROFILE)["shop"]["outputs"]["pg"]
    dbt_rendered = {k: renderer.ProfileRenderer({}).render_value(v) for k, v in raw.items()}
    assert load_target(project_dir=project).settings == dbt_rendered


def test_a_default_keeps_its_type_and_a_missing_variable_names_itself(project, monkeypatch):
    monkeypatch.delenv("POSTGRES_PORT")
    with pytest.raises(ProfileError) as err:
        load_target(project_dir=project)
    assert str(err.value) == (f"{project / 'profiles.yml'}: shop.outputs.pg.port: "
                              "env_var('POSTGRES_PORT') is not set and has no default")


@pytest.mark.parametrize(("value", "message"), [
    ("abc", "cannot convert 'abc' into a number (as_number)"),
    ("True", "cannot convert 'True' into a number (as_number)"),
])
def test_as_number_refuses_what_is_not_a_number(project, monkeypatch, value, message):
    monkeypatch.setenv("POSTGRES_PORT", value)
    with pytest.raises(ProfileError, match=r"shop\.outputs\.pg\.port: " + message.replace(
            "(", r"\(").replace(")", r"\)")):
        load_target(project_dir=project)


def test_as_bool_refuses_what_is_not_a_bool(project, monkeypatch):
    monkeypatch.setenv("SHOP_REUSE", "yes")
    with pytest.raises(ProfileError, match=r"shop\.outputs\.pg\.reuse: cannot convert 'yes' "
                                           r"into a bool"):
        load_target(project_dir=project)


def test_a_jinja_error_is_one_line_naming_the_setting(project):
    (project / "profiles.yml").write_text(PROFILE.replace("as_text", "as_nothing"))
    with pytest.raises(ProfileError) as err:
        load_target(project_dir=project)
    assert str(err.value).startswith(f"{project / 'profiles.yml'}: shop.outputs.pg.user: "
                                     "cannot render (")
    assert "\n" not in str(err.value)


def test_the_target_is_dbts_choice(project, monkeypatch):
    assert load_target(project_dir=project, target="local").settings["path"] == \
        str(project / "shop.duckdb")
    monkeypatch.setenv("DBT_TARGET", "local")
    assert load_target(project_dir=project).target == "local"
    monkeypatch.delenv("DBT_TARGET")
    monkeypatch.setenv("SHOP_TARGET", "snow")
    # any adapter names an environment, even one the sidecar cannot connect to
    assert target_name(project_dir=project) == "snow"
    with pytest.raises(ProfileError, match="type 'snowflake'; only duckdb and postgres"):
        load_target(project_dir=project)
    assert target_name(project_dir=project / "nowhere") is None
    assert target_name(project_dir=project / "nowhere", target="ci") == "ci"


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("profiles.yml", b"shop: [unclosed", "not valid YAML"),
    ("profiles.yml", b"shop:\n  target: d\xe9v\n", "not valid UTF-8"),
    ("dbt_project.yml", b"name: shop\n", "cannot read the profile name"),
])
def test_a_bad_file_is_one_line_naming_it(project, name, content, reason):
    (project / name).write_bytes(content)
    with pytest.raises(ProfileError) as err:
        load_target(project_dir=project)
    assert str(err.value).startswith(f"{project / name}: {reason}")
    assert "\n" not in str(err.value)


def test_a_non_numeric_port_is_one_line_at_connect_time(project, monkeypatch):
    from qalita_sidecar.readers.dbt.profile import connect

    (project / "profiles.yml").write_text(PROFILE.replace(
        "\"{{ env_var('POSTGRES_PORT') | as_number }}\"", "five"))
    with pytest.raises(ProfileError, match="port 'five' is not a number"):
        connect(load_target(project_dir=project))


def test_artifacts_alone_key_an_invocation_by_the_profiles_target(project, tmp_path):
    """The package records environment = var qalita_environment, else the target's name: read
    from its artifacts alone (no --env, no --target), an invocation gets the same environment,
    hence the same key, as read from the tables."""
    target = project / "target"
    target.mkdir()
    for name in ("manifest.json", "run_results.json"):
        shutil.copy(FIXTURES / "1.11" / name, target / name)
    inv_id = json.loads((target / "run_results.json").read_text())["metadata"]["invocation_id"]
    out = CliRunner().invoke(main, ["ingest", "dbt", "--no-tables", "--project-dir", str(project),
                                    "--dry-run"],
                             env={"QALITA_WORKER_ENDPOINT": "", "QALITA_OUTBOX_DIR": "",
                                  "POSTGRES_PORT": "5433", "GITHUB_SHA": "", "CI_COMMIT_SHA": "",
                                  "DBT_CLOUD_GIT_SHA": ""})
    assert out.exit_code == 0, out.output
    recorded_key = dbt_key("qalita_compat", "pg", None, inv_id)  # environment "pg" in the table
    assert f"(key {recorded_key[:12]})" in out.output
    assert "/ env pg ->" in out.output
