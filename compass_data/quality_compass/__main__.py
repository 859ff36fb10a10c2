"""`python -m quality_compass generate|load ...` (see --help)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qalita_sidecar.readers.dbt.profile import ProfileError

from .generate import GenerateConfig, generate
from .load import RAW_SCHEMA, LoadError, load_from_profile


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m quality_compass")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write a deterministic insight-graph run folder")
    g.add_argument("--out", type=Path, required=True,
                   help="parent folder; the run goes in OUT/<run_id>")
    g.add_argument("--entities", type=int, default=2000,
                   help="approximate entity rows (hundreds to millions)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--run-id", default=None, help="default: derived from the seed")
    ld = sub.add_parser("load",
                        help="load a run folder (or the newest run in a folder) into raw tables")
    ld.add_argument("run_dir", type=Path)
    ld.add_argument("--target", default=None, help="dbt target (default: the profile's)")
    ld.add_argument("--profiles-dir", type=Path, default=None)
    ld.add_argument("--project-dir", type=Path, default=None)
    ld.add_argument("--schema", default=RAW_SCHEMA, help="schema of the raw tables (default raw)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "generate":
            r = generate(GenerateConfig(args.out, args.entities, args.seed, args.run_id))
            print(f"generated run {r.run_id} in {r.run_dir}: {r.facilities} facilities, "
                  f"{r.entity_rows} entity rows, {r.node_files} nodes, {r.contributions} "
                  f"contributions, {r.classifications} classifications")
        else:
            r = load_from_profile(args.run_dir, args.target, args.profiles_dir, args.project_dir,
                                  args.schema)
            rate = r.total_rows / r.seconds if r.seconds else 0.0
            print(f"loaded run {r.run_id} into {r.target} schema {args.schema}: "
                  + ", ".join(f"{k}={v}" for k, v in r.rows.items())
                  + f" in {r.seconds:.2f}s ({rate:,.0f} rows/s)")
    except (LoadError, ProfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
