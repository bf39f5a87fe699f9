"""The nightly survey on the real embedded models: kill -9 in the middle of a unit and rerun
(the database ends equal to an uninterrupted run's), and the Ray executor on a local Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.support.nightlytools import results, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SURVEY = str(Path(sys.executable).with_name("survey"))
EMBEDDED = ["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"]


def count(url: str, sql: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        value = int(connection.execute(text(sql)).scalar() or 0)
    engine.dispose()
    return value


def nightly(config: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SURVEY, "nightly", "--config", str(config), "--log", "", *extra],
                          capture_output=True, text=True, timeout=900, env=env)  # fmt: skip


def units_stored_yet(url: str) -> int:
    """Units stored so far; 0 while the new database is still being migrated (no table yet)."""
    try:
        return count(url, "SELECT count(*) FROM units")
    except OperationalError:
        return 0


def test_kill_9_mid_unit_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    classifiers = '["previous_token", "induction"]'  # induction takes ~30 s: time to kill inside it
    killed_url, clean_url = f"sqlite:///{tmp_path / 'killed.db'}", f"sqlite:///{tmp_path / 'clean.db'}"
    killed = write_config(tmp_path / "k.toml", killed_url, ["smollm2-135m-instruct"], classifiers)
    command = [SURVEY, "nightly", "--config", str(killed), "--log", ""]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (tmp_path / "killed.db").exists() and units_stored_yet(killed_url) >= 1:
            break
        time.sleep(0.2)
    time.sleep(3)  # well inside the induction unit (scoring and its validation)
    assert process.poll() is None, "the run finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert count(killed_url, "SELECT count(*) FROM units") == 1  # the unit in flight left nothing
    assert count(killed_url, "SELECT count(*) FROM nightly_jobs WHERE status = 'running'") == 1

    status = subprocess.run([SURVEY, "status", "--config", str(killed)], capture_output=True, text=True)
    assert "running (" in status.stdout and "induction" in status.stdout  # pending, its attempt killed

    rerun = nightly(killed)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 to run (1 units pending)" in rerun.stdout
    clean = nightly(write_config(tmp_path / "c.toml", clean_url, ["smollm2-135m-instruct"], classifiers))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert results(killed_url) == results(clean_url)  # no row lost, none duplicated
    assert count(killed_url, "SELECT count(*) FROM head_scores") == 2 * 270


def test_ray_executor_runs_one_task_per_embedded_model(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ray.db'}"
    config = write_config(
        tmp_path / "r.toml", url, EMBEDDED, '["previous_token"]', extra="[ray]\nnum_cpus = 1\n"
    )
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    first = nightly(config, "--executor", "ray", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert count(url, "SELECT count(*) FROM units") == 3
    assert count(url, "SELECT count(*) FROM nightly_jobs WHERE status = 'done'") == 3
    driver = count(url, "SELECT count(DISTINCT host) FROM nightly_jobs")
    assert driver >= 2  # the tasks ran in Ray worker processes, not one after another in one process
    again = nightly(config, "--executor", "ray", env=env)
    assert again.returncode == 0 and "3 up to date, 0 to run" in again.stdout
    assert count(url, "SELECT count(*) FROM nightly_jobs") == 3
