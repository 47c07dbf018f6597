#!/usr/bin/env bash
# Quick start: set everything up, then build a synthetic province and run the whole chain
# on the embedded defaults (home: ./massar-home unless MASSAR_HOME says otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/massar demo "$@"
