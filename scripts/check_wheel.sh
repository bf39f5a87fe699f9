#!/usr/bin/env bash
# The wheel works on its own: build it, install it (not editable) into a clean virtualenv, then from
# outside the checkout list the classifiers and build the wiki of a synthetic database, which needs
# the templates, the mkdocs skeleton and the data files the wheel must carry.
# torch is the CPU build 2.13.0, installed first so pip never pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/interp-survey-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Built from a copy of the files git would commit, so no stale build/ folder leaks into the wheel.
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -c | tar -x -C "$work/src"
.venv/bin/python -m pip wheel "$work/src" --no-deps --quiet --disable-pip-version-check -w "$work/dist"
"${PYTHON:-python3}" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" "$work"/dist/*.whl
cd "$work"
venv/bin/survey classifiers
venv/bin/python -m db.fixtures fixture.db
venv/bin/survey site build --db "sqlite:///$work/fixture.db" --out "$work/out"
test -f "$work/out/index.html"
echo "check_wheel: the installed wheel built $work/out/index.html"
