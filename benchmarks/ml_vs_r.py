"""Frequentist fits: bayesglmm's in-process time vs R's, as ratios.

Each public case is fitted by each method with an R reference (``laplace``, ``agq`` with
25 nodes, ``pql`` with the dispersion estimated, ``gee`` exchangeable, ``ml``/``reml`` for
the Gaussian cases), timed as the
median of 5 fits after one warm-up, and printed beside the R seconds stored in the
reference JSON files (``glmer_laplace``/``glmer_agq25``, ``glmmpql``, ``gee_exch``,
``lmer_ml``/``lmer_reml`` and ``glmmtmb``, median of 5 in R on the machine
that made them: a machine-dependent figure, so read the ratios as indicative; for a true
side-by-side run R on this machine with ../shared/reference/r_reference.R).

Run: ``.venv/bin/python benchmarks/ml_vs_r.py [--ref-dir ../shared/data]``.
"""

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import bayesglmm as bg

CASES = ["cbpp", "bacteria", "epil", "ohio", "salamander", "sleepstudy", "milk"]
METHODS = (("laplace", "glmer_laplace"), ("agq", "glmer_agq25"), ("pql", "glmmpql"), ("gee", "gee_exch"),
           ("ml", "lmer_ml"), ("reml", "lmer_reml"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    print(f"{'case':11s} {'method':8s} {'bg s':>7s} {'R s':>8s} {'tmb s':>7s} {'bg/R':>9s} {'bg/tmb':>7s}")
    for name in CASES:
        meta = bg.datasets.info(name)
        ref = json.loads((Path(a.ref_dir) / f"{name}.json").read_text())
        model = bg.GLMM(meta.formula, bg.datasets.load(name), family=meta.family)
        for method, key in METHODS:
            if key not in ref or not ref[key].get("seconds"):
                continue
            opts = {"dispersion": "estimate"} if method == "pql" else {}
            model.fit(method, **opts)  # warm-up
            times = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                model.fit(method, **opts)
                times.append(time.perf_counter() - t0)
            s = statistics.median(times)
            g, t = ref[key]["seconds"], ref.get("glmmtmb", {}).get("seconds", float("nan"))
            ratio_tmb = "" if method != "laplace" else f" {s / t:7.2f}"
            print(f"{name:11s} {method:8s} {s:7.3f} {g:8.3f} {t if method == 'laplace' else float('nan'):7.3f} "
                  f"{s / g:9.2f}{ratio_tmb}", flush=True)
    print("R s = glmer (laplace, agq: nAGQ=25), glmmPQL (pql), geeglm (gee), lmer (ml, reml); goals: bg/glmer < 0.5, bg/tmb <= 1")


if __name__ == "__main__":
    main()
