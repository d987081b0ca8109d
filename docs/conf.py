"""Sphinx configuration of chatnb's documentation site (``make docs``).

Sphinx with MyST-NB and the PyData theme. The notebooks (``docs/notebooks`` is a link to ``notebooks/``)
are rendered from their committed outputs, never executed; a widget's output shows its static HTML
snapshot, not the live view. Everything builds offline: no intersphinx, no CDN scripts.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import chatnb_docs  # noqa: E402

import chatnb  # noqa: E402

project = "chatnb"
author = "the chatnb developers"
copyright = "the chatnb developers"
release = version = chatnb.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "myst_nb",
    "sphinx_copybutton",
    "chatnb_docs",
]

root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "notebooks/*.py", "notebooks/*.cfg"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["chatnb-docs.css"]

# -- Warnings: the CI build runs with -W --keep-going -n ---------------------------------------------------
nitpicky = True
# No intersphinx (the build is offline): names from other packages and the standard library are left
# unlinked rather than reported. References to chatnb's own names must resolve (see chatnb_docs.py).
nitpick_ignore_regex = [
    (r"py:.*", r"(?!chatnb\b).*"),
]

# -- MyST and notebooks -----------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # rendered from the committed outputs, which nbval keeps honest
# A widget's mime bundle has the live view (widget-view+json) and a static text/html snapshot: show the
# snapshot, and load no widget manager from a CDN.
nb_mime_priority_overrides = [("*", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js: dict[str, dict[str, str]] = {}
nb_merge_streams = True

# -- API reference ------------------------------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False  # a module's members are its __all__
autosummary_imported_members = True
autosummary_context = {"aliases": chatnb_docs.aliases(), "data_members": chatnb_docs.data_members()}
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
python_use_unqualified_type_names = True
add_module_names = False

# -- HTML ---------------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"chatnb {release}"
html_last_updated_fmt = None
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "footer_start": ["copyright"],
    "footer_end": [],
    "secondary_sidebar_items": ["page-toc"],
}
html_context = {"default_mode": "auto"}
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
# The notebooks' code needs the width more than a list of four notebooks needs a sidebar (the header and
# the previous/next links lead to the others).
html_sidebars = {"notebooks/*": []}
toc_object_entries_show_parents = "hide"  # the page's table of contents lists send_message(), not the class
