"""The wiki: a static site generated from the survey database (jinja2 → Markdown → mkdocs-material)."""
