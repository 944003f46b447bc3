# Two commands after cloning:  `make demo` (the main job on bundled data) and `make test`.
# Each creates the Python >= 3.12 virtual environment in .venv if it is missing.
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python

.PHONY: demo test test-slow bench bench-ml clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $$(scripts/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,bench]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayesglmm compare --seed 1 --out bayesglmm-compare

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

bench: $(STAMP)
	$(PY) benchmarks/nuts_vs_bambi.py

bench-ml: $(STAMP)
	$(PY) benchmarks/ml_vs_r.py
	$(PY) benchmarks/laplace_scale.py
	-$(PY) benchmarks/ml_structures.py

clean:
	rm -rf $(VENV) .pytest_cache
