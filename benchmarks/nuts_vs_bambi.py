"""NUTS: bayesglmm vs bambi 0.21 on the same models, in one run.

For cbpp, bacteria, ohio, epil, salamander (crossed), ohio with a correlated random slope on age,
two linear mixed models (milk's random intercept, sleepstudy's correlated slope on Days, where
``marginalize=True`` is exact) and mlmRev's Contraception ``(urban | district)`` (a binary
correlated slope on 60 districts of about 32 women; its data exported by Rscript at run time,
skipped without R and mlmRev) each package builds the model and samples 2 chains ×
(1000 tune + 1000 draws) with the same NUTS for both: PyMC's (``--sampler pymc``, the default)
or nutpie's (``--sampler nutpie``; ``pip install nutpie``). Wall time includes model building and
compilation. Printed per case: seconds, the smallest bulk ESS of the group SDs, ESS/s, and the
ratio bayesglmm/bambi of ESS/s (> 1 means bayesglmm is faster) — for the full model and, with
``--marginalize``, also for ``sample(marginalize=True)`` (the random effects integrated out by
AGQ in the graph, ``--nagq`` nodes, or exactly for the Gaussian cases, then drawn from their conditionals; the seconds include
those draws). With ``--warm`` each case is first run once untimed: bayesglmm then reuses
nutpie's compiled model of that structure (``bayesglmm.bayes.compilation.compiled_models``),
bambi compiles again (it has no such reuse), PyMC's NUTS loads both packages' Numba code from the
on-disk cache.

With ``--rstanarm`` (and ``Rscript`` with rstanarm installed; Debian: ``apt-get install
r-cran-rstanarm``) rstanarm's ``stan_glmer`` samples the same cases in the same run, before the
Python side (2 cores, ``adapt_delta`` 0.9, the same draws): its ESS/s of the group SDs (bulk ESS
of the variances, ``rstan::ess_bulk``: rank-based, so that of the SDs) is printed next to the
others. rstanarm ships its Stan programs compiled, so its first and later calls are alike; its
time is ``system.time`` of the ``stan_glmer`` call after one warm-up fit in the R process.

Priors differ: each package uses its own defaults (bambi's auto-scaled priors,
bayesglmm's documented rule in ``bayesglmm.priors``); likelihood and random-effect
structure are the same. Run: ``make bench`` or ``.venv/bin/python benchmarks/nuts_vs_bambi.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import warnings

import arviz as az
import numpy as np

import bayesglmm as bg
import rscript

CASES = {
    # name: (bayesglmm formula, bambi formula, family, grouping factors)
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)",
             "p(incidence, size) ~ period + (1 | herd)", "binomial", "herd"),
    "bacteria": ("y ~ trt + late + (1 | ID)", "y ~ trt + late + (1 | ID)", "bernoulli", "ID"),
    "ohio": ("resp ~ age + smoke + (1 | id)", "resp ~ age + smoke + (1 | id)", "bernoulli", "id"),
    "epil": ("y ~ lbase * trt + lage + V4 + (1 | subject)", "y ~ lbase * trt + lage + V4 + (1 | subject)",
             "poisson", "subject"),
    "salamander": ("Mate ~ WSf * WSm + (1 | Female) + (1 | Male)", "Mate ~ WSf * WSm + (1 | Female) + (1 | Male)",
                   "bernoulli", "Female Male"),
    # a correlated random slope (marginalize: the product rule, nagq² nodes per group)
    "ohio-slope": ("resp ~ age + smoke + (1 + age | id)", "resp ~ age + smoke + (1 + age | id)", "bernoulli", "id"),
    # linear mixed models (marginalize: exact, no quadrature): a random intercept, a correlated slope
    "milk": ("protein ~ Diet + Time + (1 | Cow)", "protein ~ Diet + Time + (1 | Cow)", "gaussian", "Cow"),
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (Days | Subject)", "gaussian", "Subject"),
    # a binary correlated slope on larger groups (60 districts, about 32 women each): R's data
    # (age in decades: with age in years bambi's chains stalled, bulk ESS 3 in 113 s)
    "contraception": ("use ~ age10 + I(age10**2) + urban + livch + (urban | district)",
                      "use ~ age10 + I(age10**2) + urban + livch + (urban | district)", "bernoulli", "district"),
}
#: cases whose data R exports at run time (not bundled): the R code leaving them in ``d``, and
#: the categorical columns; skipped without Rscript and the package
R_DATA = {"contraception": ('suppressMessages(library(mlmRev)); data(Contraception); d <- Contraception; '
                            'd$use <- as.integer(d$use == "Y"); d$age10 <- d$age / 10', ("district", "urban", "livch"))}
R_FORMULA = {"contraception": "use ~ age10 + I(age10^2) + urban + livch + (urban | district)"}
_LOADED: dict = {}


def load(name):
    """A case's data: bundled, or exported by R (:data:`R_DATA`; None when R cannot)."""
    data_name = DATA.get(name, name.split("-")[0])
    if data_name not in R_DATA:
        return bg.datasets.load(data_name)
    if data_name not in _LOADED:
        import os
        import tempfile

        import pandas as pd

        code, factors = R_DATA[data_name]
        with tempfile.TemporaryDirectory() as tmp:
            csv = os.path.join(tmp, f"{data_name}.csv")
            ok = rscript.run_json(lambda _t: [code, f'write.csv(d, "{csv}", row.names = FALSE)', 'cat("{}\\n")'],
                                  f"export of {data_name}")
            df = pd.read_csv(csv) if ok is not None else None
        if df is not None:
            for col in factors:
                df[col] = df[col].astype(str)
        _LOADED[data_name] = df
    return _LOADED[data_name]


def categorical(name):
    data_name = DATA.get(name, name.split("-")[0])
    return R_DATA[data_name][1] if data_name in R_DATA else bg.datasets.info(data_name).categorical
#: the bundled data set of a case, when its name is not one
DATA: dict[str, str] = {}
#: the warm-up model of every package: outside the timed cases
WARM_UP = {"warm-up": ("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", "p(incidence, size) ~ 1 + (1 | herd)",
                       "binomial", "herd")}
DATA["warm-up"] = "cbpp"
#: crossed designs: sample(marginalize=True) needs one grouping factor
CROSSED = {"salamander"}


def run_bayesglmm(name, draws, tune, chains, seed, sampler="pymc", marginalize=False, nagq=None):
    formula, _, family, group = {**CASES, **WARM_UP}[name]
    t0 = time.perf_counter()
    model = bg.GLMM(formula, load(name), family=family)
    post = model.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False,
                        diagnose=False, nuts_sampler=sampler, marginalize=marginalize,
                        nagq=nagq if marginalize and family != "gaussian" else None)
    secs = time.perf_counter() - t0
    groups = group.split()
    ess = float(post.variance_components().query("group in @groups and kind == 'sd'")["ess_bulk"].min())
    return secs, ess


R_FAMILY = {"bernoulli": "binomial()", "binomial": "binomial()", "poisson": "poisson()", "gaussian": "gaussian()"}


def run_rstanarm(names, draws, tune, chains, seed):
    """rstanarm's seconds and smallest bulk ESS of the group SDs per case, timed by one Rscript
    process (after a warm-up fit in it); {} without Rscript or rstanarm."""

    def script(tmp):
        lines = ["suppressMessages({library(rstanarm); library(jsonlite)})", "options(mc.cores = 2); out <- list()",
                 # the SDs' variances Sigma[g:t,t] (rank-based bulk ESS: the same for the SDs)
                 "ess_sd <- function(fit) { a <- as.array(fit); v <- grep('^Sigma[[]', dimnames(a)[[3]], value = TRUE); "
                 "t <- strsplit(sub('^Sigma[[][^:]*:(.*)[]]$', '\\\\1', v), ','); v <- v[sapply(t, function(x) x[1] == x[2])]; "
                 "min(sapply(v, function(p) rstan::ess_bulk(a[, , p]))) }"]
        for name in ["warm-up", *names]:
            formula, _, family, _ = {**CASES, **WARM_UP}[name]
            data_name = DATA.get(name, name.split("-")[0])
            n_draws, n_tune = (50, 50) if name == "warm-up" else (draws, tune)
            lines += [rscript.data_frame(tmp, data_name, load(name), categorical(name)),
                      f"t <- system.time(fit <- stan_glmer({R_FORMULA.get(name, formula)}, data = d, "
                      f"family = {R_FAMILY[family]}, "
                      f"chains = {chains}, iter = {n_tune + n_draws}, warmup = {n_tune}, adapt_delta = 0.9, "
                      f"seed = {seed}, refresh = 0))[['elapsed']]",
                      f"out[['{name}']] <- c(t, ess_sd(fit))"]
        return lines + ["cat(toJSON(out, digits = 6), '\\n')"]

    out = rscript.run_json(script, "rstanarm", timeout=3600) or {}
    out.pop("warm-up", None)
    return {name: (float(v[0]), float(v[1])) for name, v in out.items()}


def r_versions() -> str:
    """R's and rstanarm's versions, as Rscript reports them."""
    proc = subprocess.run(["Rscript", "-e", "cat(R.version.string, '; rstanarm', "
                           "as.character(packageVersion('rstanarm')), '; rstan', as.character(packageVersion('rstan')))"],
                          capture_output=True, text=True)
    return proc.stdout.strip()


def run_bambi(name, draws, tune, chains, seed, sampler="pymc"):
    import bambi as bmb

    _, formula, family, group = {**CASES, **WARM_UP}[name]
    data = load(name).copy()
    for g in group.split():
        data[g] = data[g].astype(str)
    t0 = time.perf_counter()
    model = bmb.Model(formula, data, family=family)
    if sampler == "pymc":
        idata = model.fit(draws=draws, tune=tune, chains=chains, cores=chains, random_seed=seed,
                          inference_method="pymc", progressbar=False, target_accept=0.9)
    else:
        idata = model.fit(draws=draws, tune=tune, chains=chains, cores=chains, random_seed=seed,
                          inference_method=sampler, progressbar=False, nuts={"target_accept": 0.9})
    secs = time.perf_counter() - t0
    post = idata["posterior"]
    ess = min(float(np.asarray(az.ess(post[v].values, method="bulk")).min())
              for g in group.split() for v in post.data_vars if v.endswith(f"|{g}_sigma"))
    return secs, ess


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sampler", choices=("pymc", "nutpie"), default="pymc",
                   help="the NUTS implementation, the same for both packages")
    p.add_argument("--marginalize", action="store_true", help="also time sample(marginalize=True)")
    p.add_argument("--nagq", type=int, default=None,
                   help="quadrature nodes with --marginalize (default: chosen per data set, choose_nagq)")
    p.add_argument("--warm", action="store_true",
                   help="run every case once, untimed, before timing it (fills the compile caches of "
                        "that very graph: what a second sample() of the same structure in a session pays)")
    p.add_argument("--rstanarm", action="store_true",
                   help="also time rstanarm's stan_glmer on the cases (Rscript with rstanarm installed)")
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    a.cases = [c for c in a.cases if load(c) is not None or print(f"  ({c}: skipped, R cannot export its data)")]
    # warm-up: pay one-off imports for both packages, on a model outside the cases (so that a
    # case's first timed call without --warm is a first call: no compiled model of it is kept)
    run_bayesglmm("warm-up", 50, 50, a.chains, 0, a.sampler)
    if a.marginalize:
        run_bayesglmm("warm-up", 50, 50, a.chains, 0, a.sampler, True, a.nagq)
    run_bambi("warm-up", 50, 50, a.chains, 0, a.sampler)
    stan = {}
    if a.rstanarm:  # R first, alone on the machine
        stan = run_rstanarm(a.cases, a.draws, a.tune, a.chains, a.seed)
        if stan:
            print(r_versions())
    head = (f"{'case':10s} {'bg s':>7s} {'bg ESS':>7s} {'bg ESS/s':>9s} {'bmb s':>7s} {'bmb ESS':>8s} "
            f"{'bmb ESS/s':>9s} {'time ratio':>10s} {'ESS/s ratio':>11s}")
    if a.marginalize:
        head += f" {'marg s':>7s} {'marg ESS':>8s} {'marg ESS/s':>10s} {'marg ratio':>10s}"
    print(f"sampler {a.sampler}, {a.chains} chains × ({a.tune} + {a.draws}){', warm' if a.warm else ''}" +
          (f", marginalize nagq={a.nagq or 'auto'}" if a.marginalize else ""))
    if stan:
        head += f" {'stan s':>7s} {'stan ESS':>8s} {'stan ESS/s':>10s} {'bg/stan':>7s}"
        if a.marginalize:
            head += f" {'marg/stan':>9s}"
    print(head)
    for name in a.cases:
        if a.warm:
            run_bayesglmm(name, 50, 50, a.chains, 0, a.sampler)
            run_bambi(name, 50, 50, a.chains, 0, a.sampler)
            if a.marginalize and name not in CROSSED:
                run_bayesglmm(name, 50, 50, a.chains, 0, a.sampler, True, a.nagq)
        s1, e1 = run_bayesglmm(name, a.draws, a.tune, a.chains, a.seed, a.sampler)
        s2, e2 = run_bambi(name, a.draws, a.tune, a.chains, a.seed, a.sampler)
        line = (f"{name:10s} {s1:7.1f} {e1:7.0f} {e1 / s1:9.1f} {s2:7.1f} {e2:8.0f} {e2 / s2:9.1f} "
                f"{s2 / s1:10.2f} {(e1 / s1) / (e2 / s2):11.2f}")
        if a.marginalize and name not in CROSSED:
            s3, e3 = run_bayesglmm(name, a.draws, a.tune, a.chains, a.seed, a.sampler, True, a.nagq)
            line += f" {s3:7.1f} {e3:8.0f} {e3 / s3:10.1f} {(e3 / s3) / (e2 / s2):10.2f}"
        elif a.marginalize:
            line += f" {'crossed: marginalize needs one grouping factor':>38s}"
        if name in stan:
            s4, e4 = stan[name]
            line += f" {s4:7.1f} {e4:8.0f} {e4 / s4:10.1f} {(e1 / s1) / (e4 / s4):7.2f}"
            if a.marginalize:
                line += f" {(e3 / s3) / (e4 / s4):9.2f}" if name not in CROSSED else f" {'–':>9s}"
        print(line, flush=True)
    print("time ratio = bambi seconds / bayesglmm seconds; ESS/s ratio = bayesglmm / bambi (group SD); "
          "marg ratio = marginalized bayesglmm / bambi; bg/stan, marg/stan: the same against rstanarm")


if __name__ == "__main__":
    main()
