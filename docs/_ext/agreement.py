"""Sphinx extension: the agreement-with-R table, generated at build time.

Fits every bundled data set by each method that has an R reference in the package's JSON
(``bayesglmm/datasets/reference/*.json``, written by shared/reference/r_reference.R) and writes
``_generated/agreement.md``, included by ``frequentist.md``: the largest absolute differences per
quantity, and the R call. Nothing here needs R.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import bayesglmm as bg

# reference key -> (method, fit options, R function as shown)
ENGINES = {
    "glmer_laplace": ("laplace", {}, "lme4::glmer"),
    "glmmtmb": ("laplace", {}, "glmmTMB"),
    "glmer_agq25": ("agq", {"nagq": 25}, "lme4::glmer, nAGQ = 25"),
    "glmmpql": ("pql", {"dispersion": "estimate"}, "MASS::glmmPQL"),
    "glmmpql_sigma1": ("pql", {"dispersion": "fixed"}, "MASS::glmmPQL, σ = 1"),
    "gee_exch": ("gee", {}, "geepack::geeglm"),
    "lmer_reml": ("reml", {}, "lme4::lmer, REML"),
    "lmer_ml": ("ml", {}, "lme4::lmer, ML"),
}


def _max_abs(ours: dict, theirs: dict) -> float:
    diffs = [abs(ours[k] - v) for k, v in theirs.items() if k in ours and v is not None]
    return max(diffs) if diffs else math.nan


def _fmt(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:.1e}"


def rows():
    out = []
    for name in bg.datasets.list_datasets():
        try:
            ref = bg.datasets.reference(name)
        except KeyError:  # the dispersion families' data: their references are dispersion_reference()'s
            continue
        info = bg.datasets.info(name)
        model = bg.GLMM(info.formula, bg.datasets.load(name), family=info.family)
        for key, (method, options, rfun) in ENGINES.items():
            if key not in ref:
                continue
            r = ref[key]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = model.fit(method, **options)
            est = fit.summary().set_index("parameter")
            ours_b = est["estimate"].to_dict()
            ours_se = est["std_error"].to_dict()
            beta = r.get("fixef") or r.get("coef") or {}
            se = r.get("se") or r.get("robust_se") or {}
            sd = {("sigma" if g == "Residual" else f"sd({t}|{g})"): v for (g, t), v in (r.get("sd") or {}).items()}
            if method == "pql" and not sd and r.get("sd") is not None:
                sd = {}
            loglik = r.get("loglik_full", r.get("loglik"))
            d_ll = abs(fit.loglik - loglik) if loglik is not None and math.isfinite(getattr(fit, "loglik", math.nan)) \
                else math.nan
            out.append({"data": name, "method": f"`{method}`", "R": rfun, "β": _fmt(_max_abs(ours_b, beta)),
                        "SE": _fmt(_max_abs(ours_se, se)), "SD": _fmt(_max_abs(ours_b, sd)),
                        "loglik": _fmt(d_ll), "call": r.get("r_call", "")})
    return out


def write_table(app):
    target = Path(app.srcdir) / "_generated" / "agreement.md"
    target.parent.mkdir(exist_ok=True)
    lines = ["| data | method | R | max abs. Δβ | max abs. ΔSE(β) | max abs. ΔSD | abs. Δ loglik |",
             "|---|---|---|---|---|---|---|"]
    calls = []
    for r in rows():
        lines.append(f"| {r['data']} | {r['method']} | {r['R']} | {r['β']} | {r['SE']} | {r['SD']} | {r['loglik']} |")
        calls.append(f"- {r['data']}, {r['method']}: `{r['call']}`")
    text = ("\n".join(lines) + "\n\nThe R calls (data prepared as in `shared/reference/r_reference.R`; R 4.2.2, "
            "lme4 1.1-31, glmmTMB 1.1.5, MASS 7.3-58.2, geepack 1.3.9):\n\n" + "\n".join(calls) + "\n")
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def setup(app):
    app.connect("builder-inited", write_table)
    return {"parallel_read_safe": True, "version": "1"}
