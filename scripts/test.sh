#!/usr/bin/env bash
# The test command of the README: set up if needed, then run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/rft ] || bash scripts/setup.sh
[ -x .tools/bin/helm ] && [ -x .tools/bin/hadolint ] || bash scripts/install-helm.sh
exec .venv/bin/python -m pytest "$@"
