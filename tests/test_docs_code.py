"""Every ```python block of README.md and docs/*.md runs as written, in the fast mode the notebooks use.

A page's blocks run in order in one namespace (a page reads as one session, as a notebook), in a
temporary directory (the files they write go there). Fast mode caps what only costs time: NUTS draws,
tuning and chains, replications of studies and bootstraps, as ``BAYESGLMM_FAST=1`` does for the
case studies; the calls, arguments and results are otherwise the documented ones.
"""

import functools
import re
import warnings
from pathlib import Path

import matplotlib
import pytest

import bayesglmm as bg
from bayesglmm.glmm import GLMM

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def _capped(fn, **caps):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for name, cap in caps.items():
            kwargs[name] = min(kwargs.get(name, cap), cap)
        return fn(*args, **kwargs)
    return wrapper


@pytest.fixture
def fast_mode(monkeypatch, tmp_path):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(GLMM, "sample", _capped(GLMM.sample, draws=100, tune=100, chains=2))
    for name, caps in (("simulation_study", {"n_reps": 3}), ("bootstrap_lrt", {"n": 4}),
                       ("compare", {"draws": 100, "tune": 100, "chains": 2}),
                       ("prior_sensitivity", {"draws": 100, "tune": 100, "chains": 2})):
        monkeypatch.setattr(bg, name, _capped(getattr(bg, name), **caps))
    monkeypatch.setattr(GLMM, "simulate", _capped(GLMM.simulate, n=3))


def test_every_page_with_python_has_blocks_found():
    assert python_blocks(ROOT / "README.md"), "README.md's Use block was not found"


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run_as_written(page, fast_mode):
    namespace = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what a block warns is its business; that it runs is this test's
        for i, block in enumerate(python_blocks(page)):
            try:
                exec(compile(block, f"{page.name}, block {i + 1}", "exec"), namespace)
            except Exception as err:  # noqa: BLE001 — name the page and block in the failure
                pytest.fail(f"{page.name}, python block {i + 1} failed: {type(err).__name__}: {err}")


@pytest.mark.parametrize("notebook", sorted((ROOT / "case_studies").glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebook_outputs_are_clean(notebook):
    """What a reader of a committed case study sees: no stderr stream, no warning, no machine path."""
    import json

    nb = json.loads(notebook.read_text())  # a notebook is JSON: no nbformat (a docs extra) needed
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            assert out.get("name") != "stderr", f"{notebook.name}, cell {i}: stderr output {text[:200]!r}"
            for bad in ("Warning:", "/work/", "/home/", "/tmp/"):
                assert bad not in text, f"{notebook.name}, cell {i}: {bad!r} in its output {text[:200]!r}"
