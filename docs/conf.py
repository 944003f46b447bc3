"""Sphinx configuration: Sphinx + MyST-NB (as PyMC and ArviZ build theirs), pydata theme,
autodoc/autosummary with numpydoc for the API. Build: ``make docs`` (warnings are errors)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import bayesglmm  # noqa: E402

project = "bayesglmm"
author = "the bayesglmm developers"
copyright = "2026, the bayesglmm developers"
release = version = bayesglmm.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "agreement",
]

# The case studies live in ../case_studies (jupytext .py + executed .ipynb); the site renders
# the executed notebooks, copied here at every build (never executed by Sphinx: the committed
# outputs are those of the full run, see case_studies/README.md).
CASE_STUDIES = DOCS / "case_studies"
CASE_STUDIES.mkdir(exist_ok=True)
for old in CASE_STUDIES.glob("*.ipynb"):
    old.unlink()
for nb in sorted((ROOT / "case_studies").glob("[0-9][0-9]_*.ipynb")):
    shutil.copy2(nb, CASE_STUDIES / nb.name)

nb_execution_mode = "off"
nb_output_stderr = "remove"          # sampler warnings in the notebooks' stderr are not part of the story
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3             # [text](page.md#a-heading) links are checked

# .rst first: autosummary writes its stubs with the first suffix, and its stubs are reStructuredText
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "case_studies/*.py", "_ext", "_generated"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": False}
autodoc_typehints = "none"           # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

intersphinx_mapping = {}             # no network at build time: external links are plain URLs

html_theme = "pydata_sphinx_theme"
html_title = "bayesglmm"
html_static_path = ["_static"]
html_css_files = ["custom.css"]      # wide tables and code scroll inside their box
# the header lists the three sections of index.md's toctree (user guide, case studies, reference);
# the theme's left "Section Navigation" lists the pages of the current one (its default sidebar)
html_theme_options = {"show_toc_level": 2, "navigation_with_keys": False,
                      "footer_start": ["copyright"], "footer_end": []}
suppress_warnings = ["mystnb.unknown_mime_type"]
nb_execution_raise_on_error = True    # a failing cell in an executed page fails the build


def _escape_bars(app, what, name, obj, options, lines):
    """The docstrings write |x| for an absolute value and a determinant, which reStructuredText reads
    as a substitution: escape the bars outside literal blocks (no docstring uses a grid table)."""
    literal_indent = None
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if line.strip() and indent <= literal_indent:
                literal_indent = None
            else:
                continue
        if line.rstrip().endswith("::"):
            literal_indent = indent
        lines[i] = line.replace("\\|", "|").replace("|", "\\|")


def setup(app):
    app.connect("autodoc-process-docstring", _escape_bars)
