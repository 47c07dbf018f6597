"""Benchmark: the whole nightly run (ingest, consolidation, evaluation) with the control database
on SQLite (the default) and on PostgreSQL (the production stack's), on the same province.

Each night runs ``massar nightly`` in a fresh process on a fresh home holding the same inbox, so
both pay the same embedded Prefect API and the same warehouse writes; only the control
database differs. PostgreSQL is a cluster of the machine's binaries on a loopback port, set up
as deployments/stack sets it up (fsync on, scram passwords). Then each home gets a second,
unchanged night (nothing new: what a quiet night costs).

    .venv/bin/python benchmarks/nightly_backends.py [--province /tmp/tiznit] [--schools 250]
        [--work DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MASSAR = str(Path(sys.executable).with_name("massar"))


def _night(home: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [MASSAR, "nightly", "--home", str(home)], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"massar nightly failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def _home(work: Path, name: str, province: Path, env: dict[str, str]) -> Path:
    home = work / name
    subprocess.run([MASSAR, "init", "--home", str(home)], env=env, check=True, capture_output=True)
    for school in sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit()):
        shutil.copytree(school, home / "inbox" / school.name)
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--province", type=Path, help="a generated province (else generated)")
    parser.add_argument("--schools", type=int, default=250)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    from massar.stack import Postgres, StackConfig, StackPaths, free_port

    work = args.work or Path(tempfile.mkdtemp(prefix="massar-bench-nightly-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # as root, PostgreSQL runs as 'postgres' and must reach its folder
    province = args.province
    if province is None:
        from massar.synthetic import generate_province

        province = work / "province"
        print(f"generating a province of {args.schools} schools ...", flush=True)
        generate_province(province, schools=args.schools, seed=2024, year="2023/2024")

    base = {k: v for k, v in os.environ.items() if not k.startswith(("MASSAR_", "PREFECT_"))} | {
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    paths = StackPaths(work / "pg")
    paths.root.mkdir(exist_ok=True)
    paths.logs.mkdir(exist_ok=True)
    config = StackConfig(
        pg_port=free_port(),
        prefect_port=0,
        pg_superuser="postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres"),
        service_user="",
    )
    postgres = Postgres(paths, config)
    password = secrets.token_hex(12)
    postgres.init()
    postgres.start()
    try:
        postgres.ensure_database("massar", password)
        pg_url = f"postgresql+psycopg://massar:{password}@127.0.0.1:{config.pg_port}/massar"
        backends = {"sqlite": base, "postgresql": base | {"MASSAR_DATABASE_URL": pg_url}}
        figures: dict[str, tuple[float, float]] = {}
        for name, env in backends.items():
            home = _home(work, f"home-{name}", province, env)
            first = _night(home, env)
            quiet = _night(home, env)
            figures[name] = (first, quiet)
            print(f"{name:>10}: first night {first:6.1f} s, unchanged night {quiet:5.1f} s")
        sqlite, pg = figures["sqlite"], figures["postgresql"]
        print(
            f"PostgreSQL / SQLite: first night {pg[0] / sqlite[0]:.2f}x, "
            f"unchanged night {pg[1] / sqlite[1]:.2f}x"
        )
    finally:
        postgres.stop()
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
