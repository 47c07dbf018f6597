#!/usr/bin/env bash
# Quick start: set everything up, then run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports  # the rooms' import contracts (.importlinter, docs/architecture.md)
.venv/bin/mypy  # every package ([tool.mypy] in pyproject.toml)
# Two pytest-xdist workers, a test file each at a time (their module fixtures built once);
# MASSAR_TEST_WORKERS=0 runs in one process.
exec .venv/bin/pytest -n "${MASSAR_TEST_WORKERS:-2}" --dist loadfile "$@"
