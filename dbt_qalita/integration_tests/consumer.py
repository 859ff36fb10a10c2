"""A minimal dbt project that installs the qalita package the way any user's project would."""

from __future__ import annotations

from pathlib import Path

from testkit import REPO

SEED = "id,label\n1,a\n2,b\n3,c\n"
MODEL = "select id, label from {{ ref('labels') }}\n"


def write_consumer(root: Path, hooks: int = 1, tests_per_model: int = 2, models: int = 1) -> Path:
    """Project `consumer` with `models` models over one seed; the hook listed `hooks` times."""
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
    return root
