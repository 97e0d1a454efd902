"""Sphinx configuration: the API reference is generated from the docstrings.

Sphinx autodoc is the reference's own format (it was generated this way), our
docstrings are reStructuredText, and the guides' examples run as tests with
the doctest builder (`sphinx-build -b doctest`).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

project = "chia"
author = "the chia developers"
copyright = "2026, the chia developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "click_help",  # docs/_ext: the `chia` CLI reference from the click commands
]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
suppress_warnings = ["duplicate_declaration.py"]

# Every guide's examples run on one embedded local Ray (loopback only). They
# read like a user's script: what they define lives in ``__main__``, so the
# profiler and bypass name it ``__main__.<name>`` and Ray ships it by value.
# A named namespace: a detached actor created in an anonymous one makes Ray
# print a warning on stdout, into whichever example is running.
doctest_global_setup = """
__name__ = "__main__"
import ray
if not ray.is_initialized():
    ray.init(address="local", namespace="chia-docs", num_cpus=2, include_dashboard=False, log_to_driver=False)
"""
