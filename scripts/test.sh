#!/usr/bin/env bash
# The test command, on a fresh Debian machine or a developer's: installs what the tests need from
# Debian when missing (Python's venv, PostgreSQL, Chromium; only as root, else says what is missing),
# starts a throwaway PostgreSQL server (127.0.0.1, a free port, a temporary data folder; as the
# postgres user when root) and removes it on exit, runs scripts/install.sh --dev, then pytest.
# Extra arguments go to pytest:  bash scripts/test.sh -m "not slow and not integration"
set -euo pipefail
cd "$(dirname "$0")/.."

initdb_path() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || command -v initdb || true; }

need=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3 python3-venv)
[ -n "$(initdb_path)" ] || need+=(postgresql)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "scripts/test.sh: apt-get install ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
  else
    echo "scripts/test.sh: not root, so not installing ${need[*]} (sudo apt-get install ${need[*]});" \
      "without them the PostgreSQL tests skip and the browser tests fail" >&2
  fi
fi

initdb=$(initdb_path)
if [ -n "$initdb" ]; then
  pg_bin=$(dirname "$initdb")
  pg_dir=$(mktemp -d /tmp/interp-survey-pg.XXXXXX)
  as_pg=()
  if [ "$(id -u)" = 0 ]; then  # initdb refuses to run as root
    chown postgres:postgres "$pg_dir"
    as_pg=(runuser -u postgres --)
  fi
  pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  trap '"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$pg_dir"' EXIT
  "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o "-p $pg_port -k $pg_dir -h 127.0.0.1" \
    start >/dev/null
  export INTERP_SURVEY_TEST_POSTGRES="postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres"
fi

bash scripts/install.sh --dev
.venv/bin/python -m pytest -q --durations=25 "$@"
