"""The layout the design fixes: three importable packages, and a `site/` that is never one; the
test command; and a wheel that carries everything it needs."""

from __future__ import annotations

import importlib
import subprocess
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_packages_import() -> None:
    for name in ("survey", "classifiers", "db"):
        module = importlib.import_module(name)
        assert Path(module.__file__ or "").resolve().parent == ROOT / name


def test_site_folder_does_not_shadow_the_stdlib_site_module() -> None:
    import site

    assert not (ROOT / "site" / "__init__.py").exists()
    assert Path(site.__file__ or "").resolve().parent == Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert (ROOT / "site" / "mkdocs.yml").is_file()


def test_ci_runs_the_readme_test_command() -> None:
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme and "\nbash scripts/test.sh\n" in ci
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "bash scripts/install.sh --dev\n.venv/bin/python -m pytest -q" in script


def test_pyproject_lists_every_package() -> None:
    """Packages are listed by hand (see pyproject.toml), so a new one must be added there."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("survey", "classifiers", "db")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert folders | set(setuptools["package-dir"]) == set(setuptools["packages"])


@pytest.mark.slow
def test_the_installed_wheel_lists_classifiers_and_builds_the_wiki_outside_the_checkout() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check_wheel.sh")], capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
