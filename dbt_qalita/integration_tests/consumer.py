"""A minimal dbt project that installs the qalita package the way any user's project would."""

from __future__ import annotations

from pathlib import Path

from testkit import REPO, DbtProject, make_project

SEED = "id,label\n1,a\n2,b\n3,c\n"
MODEL = "select id, label from {{ ref('labels') }}\n"


def write_consumer(root: Path, hooks: int = 1, tests_per_model: int = 2, models: int = 1,
                   files: dict[str, str] | None = None) -> Path:
    """Project `consumer` with `models` models over one seed; the hook listed `hooks` times.

    `files` adds (or replaces) files by their path in the project, e.g. a unit test's YAML.
    """
    (root / "seeds").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    (root / "seeds" / "labels.csv").write_text(SEED)
    hook_lines = "\n".join('  - "{{ qalita.record_results(results) }}"' for _ in range(hooks))
    (root / "dbt_project.yml").write_text(
        "name: consumer\nversion: '1.0'\nconfig-version: 2\nprofile: quality_compass\n"
        f"on-run-end:\n{hook_lines}\n")
    (root / "packages.yml").write_text(f"packages:\n  - local: {REPO / 'dbt_qalita'}\n")
    yml = ["models:"]
    for i in range(models):
        (root / "models" / f"m_{i}.sql").write_text(MODEL)
        yml.append(f"  - name: m_{i}\n    columns:\n      - name: id\n        data_tests:")
        yml += ["          - not_null", "          - unique"][:tests_per_model]
    (root / "models" / "_models.yml").write_text("\n".join(yml) + "\n")
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def consumer_project(tmp_path: Path, target: str, **kwargs) -> DbtProject:
    """The consumer, `dbt deps` done, on its own DuckDB file or PostgreSQL database."""
    root = write_consumer(tmp_path / "consumer", **kwargs)
    project = make_project(tmp_path, target, project_dir=root)
    project.run("deps")
    return project


def results_schema(project: DbtProject) -> str:
    """Where the hook writes by default: <target schema>_qalita."""
    return "main_qalita" if project.target == "dev" else "public_qalita"


def node_results(artifact: dict) -> list[dict]:
    """run_results.json also lists the on-run-end hook itself; the table keeps node results only."""
    return [r for r in artifact["results"] if not r["unique_id"].startswith("operation.")]


def hook_warnings(output: str) -> list[str]:
    """The lines of dbt's output where the hook reports that it could not record."""
    return [line for line in output.splitlines() if "qalita: could not record" in line]
