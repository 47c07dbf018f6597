#!/usr/bin/env bash
# Sets up a fresh clone: the system tools the tests need, a virtual environment in .venv and
# the platform installed in it with the pinned versions of constraints.txt.
# Safe to run again: it does nothing when the pins and pyproject.toml have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-packages.sh

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup.sh: Python 3.11 or newer is needed; set PYTHON=/path/to/python3.11." >&2
    exit 1
fi

# The platform's bytecode, compiled once here: with PYTHONDONTWRITEBYTECODE set (as on CI's
# machine) Python never caches it, and every process (a command, each ingest worker) compiled
# the ~190 modules it imports again (~0.1 s of CPU a worker, on the ingest's critical path).
# Sources changed since are compiled again in memory, as without a cache: never stale.
compile_bytecode() {
    PYTHONDONTWRITEBYTECODE= .venv/bin/python -m compileall -q -j 0 \
        ground massar flows tasks connectors warehouse schemas > /dev/null
}

stamp_value=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
stamp_file=.venv/.massar-installed
if [[ -x .venv/bin/massar && -f $stamp_file && "$(cat "$stamp_file")" == "$stamp_value" ]]; then
    compile_bytecode
    exit 0
fi

[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
compile_bytecode
echo "$stamp_value" > "$stamp_file"
echo "setup.sh: platform installed in .venv (massar: .venv/bin/massar)."
