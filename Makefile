# Two commands after cloning:  `make demo` (the main job on bundled data) and `make test`.
# Each creates the Python >= 3.12 virtual environment in .venv if it is missing.
VENV := .venv
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
PY := $(VENV)/bin/python

.PHONY: demo test test-slow bench bench-ml notebooks notebooks-full docs clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $$(scripts/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,bench]"
	@touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench,docs]"
	@touch $(DOCS_STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayesglmm compare --seed 1 --out bayesglmm-compare

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

bench: $(STAMP)
	$(PY) benchmarks/nuts_vs_bambi.py --fresh
	$(PY) benchmarks/repeated_fits.py
	$(PY) benchmarks/nuts_vs_bambi.py --sampler nutpie --warm --marginalize --rstanarm
	$(PY) benchmarks/nuts_vs_bambi.py --sampler nutpie --marginalize
	$(PY) benchmarks/nuts_vs_bambi.py --sampler pymc --warm --marginalize --cases cbpp bacteria ohio epil salamander

bench-ml: $(STAMP)
	$(PY) benchmarks/ml_vs_r.py
	$(PY) benchmarks/laplace_scale.py
	$(PY) benchmarks/dispersion_vs_glmmtmb.py
	-$(PY) benchmarks/ml_structures.py

# the six case studies in fast mode (BAYESGLMM_FAST=1); fails on a failing cell or a notebook over budget
notebooks: $(DOCS_STAMP)
	$(PY) scripts/run_notebooks.py

# full mode: re-executes them and rewrites the committed case_studies/*.ipynb
notebooks-full: $(DOCS_STAMP)
	$(PY) scripts/run_notebooks.py --full

# the documentation site, warnings as errors (broken internal links and references included)
docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "open docs/_build/html/index.html"

clean:
	rm -rf $(VENV) .pytest_cache docs/_build docs/_generated docs/generated docs/case_studies
