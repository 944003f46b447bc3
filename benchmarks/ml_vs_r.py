"""Frequentist fits: bayesglmm's in-process time vs R's, as ratios.

Each public case is fitted by each method with an R reference (``laplace``, ``agq`` with
25 nodes, ``pql`` with the dispersion estimated, ``gee`` exchangeable, ``ml``/``reml`` for
the Gaussian cases), timed as the median of ``--reps`` fits after one warm-up, and printed
beside

* the R seconds stored in the reference JSON files (``glmer_laplace``/``glmer_agq25``,
  ``glmmpql``, ``gee_exch``, ``lmer_ml``/``lmer_reml`` and ``glmmtmb``; measured on the
  machine that made them, so those ratios are indicative only), and
* when ``Rscript`` with lme4, glmmTMB, MASS and geepack is installed (Debian:
  ``apt-get install r-cran-lme4 r-cran-glmmtmb r-cran-mass r-cran-geepack r-cran-jsonlite``),
  R timed **in the same run** on the same CSV and this machine (median of ``--reps`` after a
  warm-up, ``system.time`` elapsed): the true side-by-side ratios ``bg/R`` and ``bg/tmb``.

Run: ``.venv/bin/python benchmarks/ml_vs_r.py [--no-r]`` (R seconds from ``bayesglmm.datasets.reference``).
"""

import argparse
import statistics
import time
import warnings

import bayesglmm as bg
import rscript

CASES = ["cbpp", "bacteria", "epil", "ohio", "salamander", "sleepstudy", "milk"]
METHODS = (("laplace", "glmer_laplace"), ("agq", "glmer_agq25"), ("pql", "glmmpql"), ("gee", "gee_exch"),
           ("ml", "lmer_ml"), ("reml", "lmer_reml"))


R_FAMILY = {"bernoulli": "binomial()", "binomial": "binomial()", "poisson": "poisson()"}


def r_timings(name, meta, data, methods, reps):
    """Seconds of the R fits of one case, timed by Rscript on this machine (None without R)."""
    model = bg.GLMM(meta.formula, data, family=meta.family)
    groups = model.design.groups
    fixed = meta.formula.split("+ (")[0].strip()

    def script(tmp):
        lines = [
            "suppressMessages({library(lme4); library(glmmTMB); library(MASS); library(geepack); library(jsonlite)})",
            f"reps <- {reps}; med <- function(f) {{ f(); median(replicate(reps, system.time(f())[['elapsed']])) }}",
            rscript.data_frame(tmp, name, data, meta.categorical),
            f"fo <- {meta.formula}; out <- list()",
        ]
        if meta.family == "gaussian":
            lines += ["out$ml <- med(function() lmer(fo, data = d, REML = FALSE))",
                      "out$reml <- med(function() lmer(fo, data = d, REML = TRUE))"]
        else:
            fam = R_FAMILY[meta.family]
            lines += [f"out$laplace <- med(function() glmer(fo, data = d, family = {fam}))",
                      f"out$tmb <- med(function() glmmTMB(fo, data = d, family = {fam}))"]
            if "agq" in methods:
                lines.append(f"out$agq <- med(function() glmer(fo, data = d, family = {fam}, nAGQ = 25))")
            if "pql" in methods:
                lines.append(f"out$pql <- med(function() glmmPQL({fixed}, random = ~ 1 | {groups[0]}, "
                             f"family = {fam}, data = d, verbose = FALSE))")
            if "gee" in methods:
                lines.append(f"gd <- d[order(d${groups[0]}), ]; out$gee <- med(function() geeglm({fixed}, "
                             f"id = gd${groups[0]}, data = gd, family = {fam}, corstr = 'exchangeable'))")
        return lines + ["cat(toJSON(out, auto_unbox = TRUE, digits = 6))"]

    return rscript.run_json(script, f"R timing of {name}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-r", action="store_true", help="do not time R here even if Rscript is installed")
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    print(f"{'case':11s} {'method':8s} {'bg s':>7s} {'R(json)':>8s} {'bg/R(json)':>10s} {'R here':>7s} "
          f"{'tmb here':>8s} {'bg/R':>6s} {'bg/tmb':>6s}")
    for name in CASES:
        meta = bg.datasets.info(name)
        ref = bg.datasets.reference(name)  # the reference JSON shipped in the package
        data = bg.datasets.load(name)
        model = bg.GLMM(meta.formula, data, family=meta.family)
        methods = [m for m, key in METHODS if key in ref and ref[key].get("seconds")]
        here = None if a.no_r else r_timings(name, meta, data, methods, a.reps)
        for method, key in METHODS:
            if method not in methods:
                continue
            # agq at 25 nodes, as the R side (glmer nAGQ = 25); fit("agq") alone chooses its nodes
            opts = {"dispersion": "estimate"} if method == "pql" else {"nagq": 25} if method == "agq" else {}
            model.fit(method, **opts)  # warm-up
            times = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                model.fit(method, **opts)
                times.append(time.perf_counter() - t0)
            s = statistics.median(times)
            g = ref[key]["seconds"]
            r = (here or {}).get(method, float("nan"))
            t = (here or {}).get("tmb", float("nan")) if method == "laplace" else float("nan")
            print(f"{name:11s} {method:8s} {s:7.3f} {g:8.3f} {s / g:10.2f} {r:7.3f} {t:8.3f} {s / r:6.2f} "
                  f"{s / t:6.2f}", flush=True)
    print("R = glmer (laplace; agq: nAGQ=25), glmmPQL (pql), geeglm (gee), lmer (ml, reml); tmb = glmmTMB.\n"
          "Goals: every fit <= 0.5 x glmer's time and <= glmmTMB's.")


if __name__ == "__main__":
    main()
