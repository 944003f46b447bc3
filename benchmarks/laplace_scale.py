"""How the Laplace fit's time and memory grow with the number of rows, against glmer and glmmTMB.

The case of issue 10: a Bernoulli logit model with a correlated random intercept and slope,
``y ~ x + (1 + x | g)``, 20 rows per group (100,000 rows = 5,000 groups), simulated at
β = (−0.5, 0.8), SDs (1.0, 0.5), correlation 0.3. For each size bayesglmm's ``fit("laplace")``
is timed (median of ``--reps`` after one warm-up on the same data) with its peak traced memory
(``tracemalloc``: NumPy reports its arrays to it), and, when ``Rscript`` with lme4 and glmmTMB is
installed, ``glmer(..., nAGQ = 1)`` and ``glmmTMB`` are timed in the same run on the same CSV
(``system.time`` elapsed, median of ``--reps``). The estimates of the three are printed side by side.

Run: ``.venv/bin/python benchmarks/laplace_scale.py [--sizes 1000 10000 100000] [--reps 3] [--no-r]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd

import bayesglmm as bg

FORMULA = "y ~ x + (1 + x | g)"


def simulate(n_rows: int, per_group: int = 20, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    G = max(1, n_rows // per_group)
    g = np.repeat(np.arange(G), per_group)[:n_rows]
    x = rng.normal(size=n_rows)
    cov = np.array([[1.0, 0.3 * 0.5], [0.3 * 0.5, 0.25]])
    b = rng.multivariate_normal(np.zeros(2), cov, size=G)
    eta = -0.5 + 0.8 * x + b[g, 0] + b[g, 1] * x
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g]})


def time_bg(df, reps):
    model = bg.GLMM(FORMULA, df, family="bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit("laplace")  # warm-up
        tracemalloc.start()
        secs, fit = [], None
        for _ in range(reps):
            fit = None  # the previous result freed: the peak is one fit's
            t0 = time.perf_counter()
            fit = model.fit("laplace")
            secs.append(time.perf_counter() - t0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    vc = fit.variance_components()
    return {"seconds": statistics.median(secs), "peak_mb": peak / 2**20, "beta": fit.beta.tolist(),
            "sd": vc[vc["kind"] == "sd"]["estimate"].tolist(), "loglik": fit.loglik}


R_SCRIPT = r"""
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
args <- commandArgs(TRUE); d <- read.csv(args[1]); reps <- as.integer(args[2])
d$g <- factor(d$g)
f <- y ~ x + (1 + x | g)
tm <- function(expr) { e <- substitute(expr); eval(e); median(replicate(reps, system.time(eval(e))[["elapsed"]])) }
m1 <- glmer(f, d, binomial); t1 <- tm(glmer(f, d, binomial))
m2 <- glmmTMB(f, d, binomial); t2 <- tm(glmmTMB(f, d, binomial))
vc1 <- as.data.frame(VarCorr(m1)); s2 <- attr(VarCorr(m2)$cond$g, "stddev")
cat(toJSON(list(glmer = list(seconds = t1, beta = unname(fixef(m1)), sd = vc1$sdcor[1:2], loglik = as.numeric(logLik(m1))),
                glmmtmb = list(seconds = t2, beta = unname(fixef(m2)$cond), sd = unname(s2), loglik = as.numeric(logLik(m2)))),
           digits = 10, auto_unbox = TRUE))
"""


def time_r(df, reps):
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = os.path.join(tmp, "d.csv"), os.path.join(tmp, "t.R")
        df.to_csv(csv, index=False)
        with open(script, "w") as fh:
            fh.write(R_SCRIPT)
        out = subprocess.run(["Rscript", script, csv, str(reps)], capture_output=True, text=True)
        if out.returncode != 0:
            print("R failed:", out.stderr[-500:])
            return None
        return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 30_000, 100_000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        df = simulate(n)
        ours = time_bg(df, args.reps)
        r = None if args.no_r else time_r(df, args.reps)
        row = {"rows": n, "groups": df["g"].nunique(), "bg_s": ours["seconds"], "bg_peak_mb": ours["peak_mb"]}
        if r:
            row.update(glmer_s=r["glmer"]["seconds"], tmb_s=r["glmmtmb"]["seconds"],
                       bg_over_glmer=ours["seconds"] / r["glmer"]["seconds"],
                       bg_over_tmb=ours["seconds"] / r["glmmtmb"]["seconds"],
                       max_abs_dbeta_tmb=float(np.max(np.abs(np.subtract(ours["beta"], r["glmmtmb"]["beta"])))),
                       max_abs_dsd_tmb=float(np.max(np.abs(np.subtract(ours["sd"], r["glmmtmb"]["sd"])))),
                       dloglik_tmb=ours["loglik"] - r["glmmtmb"]["loglik"])
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
