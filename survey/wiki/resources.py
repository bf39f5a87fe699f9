"""Where the wiki's jinja2 templates and mkdocs skeleton are.

In a checkout (and an editable install) they are the top-level ``templates/`` and ``site/``
folders; a wheel carries them inside this package as ``survey/wiki/templates`` and
``survey/wiki/skeleton`` (``pyproject.toml`` maps them there), since ``site`` must never be an
importable top-level name.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _folder(packaged: str, checkout: str) -> Path:
    """The folder as installed from a wheel, else the checkout's top-level one."""
    inside = _HERE / packaged
    return inside if inside.is_dir() else _HERE.parents[1] / checkout


TEMPLATES = _folder("templates", "templates")
SKELETON = _folder("skeleton", "site")  # mkdocs.yml and assets/
