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

With ``--fresh`` every variant runs in processes of its own, as a user meets it after a kernel
restart: bayesglmm's defaults (``sample()``: nutpie, ``marginalize="auto"``), bayesglmm's
``marginalize=True``, bambi with PyMC's NUTS and with nutpie; each first compiled by one untimed
process of its own (bayesglmm keeps its compiled code on disk: ``bayesglmm.bayes.nutpie_compile``;
bambi's PyMC graph is in PyTensor's on-disk cache too), then timed on its first and second call in
a new process. The ratios are against bambi's faster sampler of that run, call by call; the cold
column is bayesglmm's first call with empty compile caches (a machine that never compiled).

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
    """bayesglmm's seconds and smallest bulk ESS of the group SDs; ``marginalize=False`` samples the
    full model, ``"auto"`` what ``sample()`` chooses by default."""
    formula, _, family, group = {**CASES, **WARM_UP}[name]
    t0 = time.perf_counter()
    model = bg.GLMM(formula, load(name), family=family)
    post = model.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False,
                        diagnose=False, nuts_sampler=sampler, marginalize=marginalize,
                        nagq=nagq if marginalize is True and family != "gaussian" else None)
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


#: the variants --fresh times, each in processes of its own: (label, package, sampler, marginalize)
FRESH = {"ours": ("bayesglmm", "nutpie", "auto"), "ours-marg": ("bayesglmm", "nutpie", True),
         "bambi-pymc": ("bambi", "pymc", None), "bambi-nutpie": ("bambi", "nutpie", None)}


def worker(kind, name, a):
    """One fresh process's part of --fresh: two calls of ``kind`` on case ``name`` (the second a new
    model of the same data: what a session's later call pays), printed as JSON."""
    import json

    import nutpie  # noqa: F401  (imported before the clock, as bambi's import brings PyMC and ArviZ)
    import pymc  # noqa: F401

    package, sampler, marginalize = FRESH[kind]
    out = []
    for _ in range(2):
        if package == "bambi":
            out.append(run_bambi(name, a.draws, a.tune, a.chains, a.seed, sampler))
        else:
            out.append(run_bayesglmm(name, a.draws, a.tune, a.chains, a.seed, sampler, marginalize, a.nagq))
    print("RESULT " + json.dumps(out), flush=True)


def fresh_process(kind, name, a, cold=False):
    """Run :func:`worker` in a new Python process ([[s1, ess1], [s2, ess2]]); ``cold``: with empty
    compile caches (PyTensor's and Numba's in a temporary directory: a machine that never compiled)."""
    import json
    import os
    import sys
    import tempfile

    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if cold:
            env["PYTENSOR_FLAGS"] = f"base_compiledir={tmp}/pytensor"
            env["NUMBA_CACHE_DIR"] = f"{tmp}/numba"
        cmd = [sys.executable, __file__, "--worker", kind, "--cases", name, "--draws", str(a.draws), "--tune",
               str(a.tune), "--chains", str(a.chains), "--seed", str(a.seed)] + (["--nagq", str(a.nagq)] if a.nagq else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    lines = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
    if res.returncode or not lines:
        raise RuntimeError(f"{kind} on {name} failed:\n{res.stderr[-2000:]}")
    return json.loads(lines[-1][7:])


def run_fresh(a):
    """--fresh: every variant's first and second sample() in a new process, after one untimed process
    has compiled the case on this machine (bayesglmm keeps compiled code on disk; bambi's PyMC graph is
    in PyTensor's cache too), and bayesglmm's default with empty caches (the cold first call)."""
    print(f"fresh processes, {a.chains} chains × ({a.tune} + {a.draws}); ESS/s of the smallest group SD over the "
          "whole call; ratios ÷ bambi's faster sampler in this run (first | second call)")
    print(f"{'case':12s} {'bambi best':>18s} {'ours 1st':>9s} {'ratio':>6s} {'ours 2nd':>9s} {'ratio':>6s} "
          f"{'marg 1st':>9s} {'ratio':>6s} {'marg 2nd':>9s} {'ratio':>6s} {'cold s':>7s} {'cold ratio':>10s}")
    for name in a.cases:
        kinds = ["ours", "bambi-pymc", "bambi-nutpie"] + (["ours-marg"] if name not in CROSSED else [])
        for kind in kinds:  # compile what each variant needs, untimed
            fresh_process(kind, name, argparse.Namespace(**{**vars(a), "draws": 50, "tune": 50}))
        got = {kind: fresh_process(kind, name, a) for kind in kinds}
        cold = fresh_process("ours", name, a, cold=True)[0]

        def rate(call):
            return call[1] / call[0]

        best = {i: max(rate(got[k][i]) for k in ("bambi-pymc", "bambi-nutpie")) for i in (0, 1)}
        which = "pymc" if rate(got["bambi-pymc"][0]) >= rate(got["bambi-nutpie"][0]) else "nutpie"
        line = (f"{name:12s} {best[0]:7.1f} | {best[1]:6.1f} {which:>3s} {rate(got['ours'][0]):9.1f} "
                f"{rate(got['ours'][0]) / best[0]:6.2f} {rate(got['ours'][1]):9.1f} {rate(got['ours'][1]) / best[1]:6.2f}")
        if "ours-marg" in got:
            m = got["ours-marg"]
            line += f" {rate(m[0]):9.1f} {rate(m[0]) / best[0]:6.2f} {rate(m[1]):9.1f} {rate(m[1]) / best[1]:6.2f}"
        else:
            line += f" {'crossed: one grouping factor needed':>35s}"
        line += f" {cold[0]:7.1f} {rate(cold) / best[0]:10.2f}"
        print(line, flush=True)
        print(f"{'':12s} seconds: ours {got['ours'][0][0]:.1f} | {got['ours'][1][0]:.1f}; bambi pymc "
              f"{got['bambi-pymc'][0][0]:.1f} | {got['bambi-pymc'][1][0]:.1f}; bambi nutpie {got['bambi-nutpie'][0][0]:.1f}"
              f" | {got['bambi-nutpie'][1][0]:.1f}" + (f"; marg {got['ours-marg'][0][0]:.1f} | {got['ours-marg'][1][0]:.1f}"
                                                       if "ours-marg" in got else ""), flush=True)


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
    p.add_argument("--fresh", action="store_true",
                   help="each package's first and second sample() in new processes (bayesglmm's defaults, "
                        "marginalized, bambi's PyMC and nutpie), and bayesglmm's with empty compile caches")
    p.add_argument("--worker", choices=list(FRESH), help=argparse.SUPPRESS)
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    if a.worker:
        return worker(a.worker, a.cases[0], a)
    a.cases = [c for c in a.cases if load(c) is not None or print(f"  ({c}: skipped, R cannot export its data)")]
    if a.fresh:
        return run_fresh(a)
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
