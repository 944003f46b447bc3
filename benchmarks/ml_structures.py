"""Laplace on the structures beyond one scalar random effect, against glmer and glmmTMB in one run.

Two public designs from R packages (exported to CSV by ``Rscript`` at run time; nothing is
bundled or downloaded):

* ``verbagg`` — crossed random effects: lme4's ``VerbAgg`` (7,584 rows; 316 persons × 24 items),
  ``r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)``, Bernoulli logit;
* ``contraception`` — a correlated random slope on one factor: mlmRev's ``Contraception``
  (1,934 women in 60 districts), ``use ~ age + I(age^2) + urban + livch + (urban | district)``;
  also fitted by AGQ (nagq = 11, the 2-term product rule), which neither glmer nor glmmTMB fits
  (its seconds and its log-likelihood's difference from Laplace's are printed);
* ``insteval`` — a crossed Gaussian LMM by REML: lme4's ``InstEval`` (73,421 ratings; 2,972
  students, 1,128 instructors, 14 departments), ``y ~ service + (1 | s) + (1 | d) + (1 | dept)``,
  against ``lmer(REML = TRUE)`` and ``glmmTMB(REML = TRUE)``.

Each is fitted by bayesglmm's ``fit("laplace")`` (``"reml"`` for InstEval) (median of ``--reps`` after a warm-up) and by
``glmer`` (``nAGQ = 1``) and ``glmmTMB`` in the same run (``system.time`` elapsed, median of
``--reps``; the lme4 column is glmer, or lmer for InstEval); the ratios and the largest differences of β, SDs and the log-likelihood are printed.
Needs ``Rscript`` with lme4, glmmTMB, mlmRev and jsonlite (Debian: ``r-cran-lme4 r-cran-glmmtmb
r-cran-mlmrev r-cran-jsonlite``).

Run: ``.venv/bin/python benchmarks/ml_structures.py [--reps 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import rscript

import bayesglmm as bg

CASES = {
    "verbagg": {
        "export": 'data(VerbAgg, package = "lme4"); d <- VerbAgg; d$r2 <- as.integer(d$r2 == "Y")',
        "formula": "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        "r_formula": "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        "factors": ["id", "item", "Gender", "btype", "situ"],
    },
    "insteval": {
        "export": 'data(InstEval, package = "lme4"); d <- InstEval',
        "formula": "y ~ service + (1 | s) + (1 | d) + (1 | dept)",
        "r_formula": "y ~ service + (1 | s) + (1 | d) + (1 | dept)",
        "factors": ["s", "d", "dept", "service"],
        "family": "gaussian", "method": "reml",
    },
    "contraception": {
        "export": ('suppressMessages(library(mlmRev)); data(Contraception); d <- Contraception; '
                   'd$use <- as.integer(d$use == "Y")'),
        "formula": "use ~ age + I(age**2) + urban + livch + (urban | district)",
        "r_formula": "use ~ age + I(age^2) + urban + livch + (urban | district)",
        "factors": ["district", "urban", "livch"],
        "agq": 11,  # also AGQ with the 2-term product rule (11² nodes): no R function fits it (glmer: nAGQ = 1 only)
    },
}

R_FIT = r"""
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
d <- read.csv(args[1]); reps <- as.integer(args[2]); f <- as.formula(args[3])
for (v in strsplit(args[4], ",")[[1]]) d[[v]] <- factor(d[[v]])
tm <- function(expr) { e <- substitute(expr); eval(e); median(replicate(reps, system.time(eval(e))[["elapsed"]])) }
if (args[5] == "gaussian") {
  m1 <- lmer(f, d, REML = TRUE); t1 <- tm(lmer(f, d, REML = TRUE))
  m2 <- glmmTMB(f, d, REML = TRUE); t2 <- tm(glmmTMB(f, d, REML = TRUE))
} else {
  m1 <- glmer(f, d, binomial); t1 <- tm(glmer(f, d, binomial))
  m2 <- glmmTMB(f, d, binomial); t2 <- tm(glmmTMB(f, d, binomial))
}
vc1 <- as.data.frame(VarCorr(m1)); vc1 <- vc1[is.na(vc1$var2) & vc1$grp != "Residual", ]
sd2 <- unlist(lapply(VarCorr(m2)$cond, function(s) attr(s, "stddev")))
cat(toJSON(list(glmer = list(seconds = t1, beta = unname(fixef(m1)), sd = vc1$sdcor, loglik = as.numeric(logLik(m1))),
                glmmtmb = list(seconds = t2, beta = unname(fixef(m2)$cond), sd = unname(sd2),
                               loglik = as.numeric(logLik(m2)))), digits = 10, auto_unbox = TRUE))
"""


def _r_json(lines, label):
    """Run R ``lines`` (:func:`rscript.run_json`); the JSON of its last line, raising when R fails."""
    out = rscript.run_json(lambda _tmp: lines, label)
    if out is None:
        raise RuntimeError(f"{label}: Rscript failed (see above)")
    return out


def run_case(name, case, reps, tmp):
    csv = os.path.join(tmp, f"{name}.csv")
    _r_json([case["export"], f'write.csv(d, "{csv}", row.names = FALSE)', 'cat("{}\\n")'], f"export of {name}")
    df = pd.read_csv(csv)
    for col in case["factors"]:
        df[col] = df[col].astype(str)
    family, method = case.get("family", "bernoulli"), case.get("method", "laplace")
    model = bg.GLMM(case["formula"], df, family=family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(method)
        secs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fit = model.fit(method)
            secs.append(time.perf_counter() - t0)
    args = [csv, str(reps), case["r_formula"], ",".join(case["factors"]), family]
    r = _r_json([f"args <- c({', '.join(json.dumps(a) for a in args)})", R_FIT], f"R fits of {name}")
    vc = fit.variance_components()
    sd = vc[(vc["kind"] == "sd") & (vc["group"] != "Residual")]["estimate"].to_numpy()
    ours = statistics.median(secs)
    agq = {}
    if "agq" in case:  # bayesglmm alone: the product rule on the vector random effect
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            agq_secs = []
            for _ in range(reps):
                t0 = time.perf_counter()
                afit = model.fit("agq", nagq=case["agq"])
                agq_secs.append(time.perf_counter() - t0)
        agq = {"agq_nagq": case["agq"], "agq_s": statistics.median(agq_secs), "agq_minus_laplace_loglik":
               afit.loglik - fit.loglik, "agq_converged": afit.converged}
    return {**agq, "case": name, "method": method, "rows": model.design.nobs, "bg_s": ours, "lme4_s": r["glmer"]["seconds"],
            "tmb_s": r["glmmtmb"]["seconds"], "bg_over_lme4": ours / r["glmer"]["seconds"],
            "bg_over_tmb": ours / r["glmmtmb"]["seconds"],
            "max_dbeta_tmb": float(np.max(np.abs(fit.beta - r["glmmtmb"]["beta"]))),
            "max_dsd_tmb": float(np.max(np.abs(np.sort(sd) - np.sort(r["glmmtmb"]["sd"])))),
            "dloglik_tmb": fit.loglik - r["glmmtmb"]["loglik"],
            "dloglik_lme4": fit.loglik - r["glmer"]["loglik"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    args = ap.parse_args()
    if shutil.which("Rscript") is None:
        raise SystemExit("this benchmark needs Rscript with lme4, glmmTMB and mlmRev (the data come from R)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            rows.append(run_case(name, CASES[name], args.reps, tmp))
            print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
