"""Sphinx configuration for Flask-Amazon-Orders."""

from __future__ import annotations

import importlib.metadata

project = "Flask-Amazon-Orders"
copyright = "2026, the Flask-Amazon-Orders developers"
release = importlib.metadata.version("Flask-Amazon-Orders")
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = False
html_theme = "alabaster"
html_static_path: list[str] = []
exclude_patterns = ["_build"]
