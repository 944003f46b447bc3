"""Likelihood-ratio tests between nested fits, with the boundary correction for variances.

When the reduced model drops one random-effect term, the variance under test sits on the
boundary of its parameter space and the usual χ² reference is wrong. For one more variance
(and its covariances with the q terms already in its block) the null distribution is the
50:50 mixture ½χ²_q + ½χ²_{q+1}: ½χ²₀ + ½χ²₁ for a single variance (Self & Liang 1987),
½χ²₁ + ½χ²₂ for adding a random slope with its correlation (Stram & Lee 1994).

References
----------
Self, S. G. and Liang, K.-Y. (1987). JASA 82, 605–610.
Stram, D. O. and Lee, J. W. (1994). Variance components testing in the longitudinal mixed
effects model. Biometrics 50, 1171–1177.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..scaling import column_frame
from ..results import is_residual

__all__ = ["lrt", "check_nested", "compare_models"]


def _n_params(fit):
    vc = fit.variance_components()
    n_sd = int(((vc["kind"] == "sd").to_numpy() & ~is_residual(vc)).sum())
    return len(fit.beta), n_sd, len(fit.theta)


#: a reduced column counts as inside the full model's column space when its least-squares residual
#: is below this share of its norm (the columns are data, exact up to rounding)
SPAN_TOL = 1e-8


def _outside_span(A: np.ndarray, B: np.ndarray) -> list[int]:
    """The columns of ``A`` that are not linear combinations of the columns of ``B`` (same rows)."""
    if A.shape[1] == 0:
        return []
    if B.shape[1] == 0:
        return [j for j in range(A.shape[1]) if np.linalg.norm(A[:, j]) > 0]
    # projected on an orthonormal basis of B's span (its columns centred first: column_frame), not by
    # least squares on B itself, which with a covariate near 10⁷ put the intercept outside [1, x]
    Q = B @ column_frame(B).A / np.sqrt(len(B))
    resid = np.linalg.norm(A - Q @ (Q.T @ A), axis=0)
    scale = np.maximum(np.linalg.norm(A, axis=0), np.finfo(float).tiny)
    return [j for j in range(A.shape[1]) if resid[j] > SPAN_TOL * scale[j]]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two level indices group the rows the same way (whatever the labels)."""
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def check_nested(full, reduced) -> None:
    """Raise ``ValueError`` unless ``reduced``'s model is nested in ``full``'s.

    Nested means: the same response on the same rows, the same family and link; the reduced
    linear predictor's fixed part (its X columns, and its offset's difference from the full
    offset) inside the column space of the full X, checked numerically (a renamed or permuted
    covariate has the same label but another column); and each reduced random block within a
    full block of the same grouping (the same partition of the rows) whose covariates span the
    reduced block's (``(1 | g)`` in ``(1 + x | g)``; two uncorrelated blocks may sit in one
    correlated block, not the reverse).
    """
    d_full, d_red = full.model.design, reduced.model.design
    f_fam, r_fam = full.model.family, reduced.model.family
    if f_fam != r_fam:
        raise ValueError(f"the models are not nested: the full model is {f_fam.name} ({f_fam.link.name} link), the "
                         f"reduced one {r_fam.name} ({r_fam.link.name} link)")
    if d_full.nobs != d_red.nobs or not np.array_equal(d_full.y, d_red.y) or not (
            (d_full.trials is None) == (d_red.trials is None)
            and (d_full.trials is None or np.array_equal(d_full.trials, d_red.trials))):
        what = (f"{d_full.nobs} and {d_red.nobs} rows" if d_full.nobs != d_red.nobs else
                f"the values of {d_full.response!r} and {d_red.response!r} differ")
        raise ValueError(f"the two fits are not of the same response data ({what}): fit both models to the same rows "
                         "(with missing='drop', the rows dropped can differ: drop them from the data first)")
    fixed = np.column_stack([d_red.X, d_red.offset - d_full.offset])
    names = [*d_red.fixed_names, "offset"]
    outside = [names[j] for j in _outside_span(fixed, d_full.X)]
    if outside:
        raise ValueError(f"the models are not nested: the reduced model's fixed-effect column(s) "
                         f"{', '.join(map(repr, outside))} are not in the span of the full model's "
                         f"{list(d_full.fixed_names)} (a different covariate, or the same name on other data)")
    for block in d_red.random:
        home = [b for b in d_full.random if _same_partition(block.index, b.index)]
        if not home:
            raise ValueError(f"the models are not nested: the reduced model's grouping factor {block.group!r} "
                             "groups the rows as no grouping factor of the full model does "
                             f"({', '.join(map(repr, d_full.groups))})")
        if not any(not _outside_span(block.Xr, b.Xr) for b in home):
            raise ValueError(f"the models are not nested: the reduced model's random block {block.label!r} is not "
                             f"within one random block of {home[0].group!r} in the full model "
                             f"({', '.join(repr(b.label) for b in home)})")


def lrt(full, reduced) -> pd.DataFrame:
    """Likelihood-ratio test of ``reduced`` against ``full`` (nested ML fits of the same data).

    Parameters
    ----------
    full, reduced : MLFit
        Fits by ``"laplace"``, ``"agq"`` or ``"ml"`` (or ``"reml"`` when the fixed effects
        are the same) of the same response; ``reduced`` nested in ``full``.

    Returns
    -------
    pandas.DataFrame
        One row: ``statistic``, ``df``, ``p_value_naive`` (χ²_df), ``p_value`` (boundary-
        corrected when the test is of one added random term, else equal to the naive one),
        ``null_distribution`` (text).

    Raises
    ------
    ValueError
        Fits without a likelihood (PQL, GEE), of different methods, REML fits whose fixed
        effects differ, or models that are not nested (see :func:`check_nested`: other
        response data or family, a fixed-effect column outside the full model's span, a random
        block outside the full model's) or do not have fewer parameters.
    """
    for f, name in ((full, "full"), (reduced, "reduced")):
        if not np.isfinite(getattr(f, "loglik", np.nan)):
            raise ValueError(f"the {name} fit has no likelihood (method {f.method!r}): use 'laplace', 'agq' or 'ml'")
    if full.method != reduced.method:
        raise ValueError(f"compare fits of one method, got {full.method!r} and {reduced.method!r}")
    check_nested(full, reduced)
    d_full, d_red = full.model.design, reduced.model.design
    p_full, sd_full, th_full = _n_params(full)
    p_red, sd_red, th_red = _n_params(reduced)
    if full.method == "reml" and d_full.fixed_names != d_red.fixed_names:
        raise ValueError("REML likelihoods of models with different fixed effects are not comparable: refit with 'ml'")
    df = (p_full - p_red) + (th_full - th_red)
    if df <= 0:
        raise ValueError(f"the full model must have more parameters than the reduced one (difference {df})")
    stat = max(0.0, 2.0 * (full.loglik - reduced.loglik))
    p_naive = float(stats.chi2.sf(stat, df))
    if p_full == p_red and sd_full - sd_red == 1:
        q = df - 1
        p = 0.5 * (float(stats.chi2.sf(stat, q)) if q > 0 else float(stat == 0)) + 0.5 * float(stats.chi2.sf(stat, df))
        null = f"0.5*chi2({q}) + 0.5*chi2({df})"
    else:
        p, null = p_naive, f"chi2({df}) (no boundary correction: not a test of one random term)"
    return pd.DataFrame([{"statistic": stat, "df": df, "p_value_naive": p_naive, "p_value": p,
                          "null_distribution": null, "method": full.method}])


def compare_models(fits: dict) -> pd.DataFrame:
    """ML fits of one response compared: a table as :func:`bayesglmm.loo_compare`'s, ranked by AIC.

    Parameters
    ----------
    fits : dict
        ``{label: fit}``, maximum-likelihood fits (``"laplace"``, ``"agq"``, ``"ml"``; ``"reml"`` only among
        models with the same fixed effects) of one method and the same response data.

    Returns
    -------
    pandas.DataFrame
        Indexed by label, best first: ``rank``, ``aic``, ``aic_diff`` (to the best), ``bic``, ``loglik``,
        ``df`` (the parameters: fixed effects, covariance parameters, a residual SD or dispersion),
        ``weight`` (Akaike weights, exp(−Δ/2) normalised), and, as R's ``anova()`` of nested fits, for
        each model nested in the next larger one (by ``df``) the likelihood-ratio test of it there:
        ``lrt_against`` (the larger model), ``statistic``, ``lrt_df``, ``p_value`` (boundary-corrected for
        one added random term, :func:`lrt`); NaN where the next larger model does not nest it.
    """
    if not isinstance(fits, dict) or len(fits) < 2:
        raise ValueError("compare_models needs a dict of at least two fits, {label: fit}")
    for label, fit in fits.items():
        if not np.isfinite(getattr(fit, "loglik", np.nan)):
            raise ValueError(f"fits[{label!r}] has no likelihood (method {getattr(fit, 'method', '?')!r}): compare "
                             "fits by 'laplace', 'agq' or 'ml' (posteriors: bg.loo_compare)")
    methods = {fit.method for fit in fits.values()}
    if len(methods) > 1:
        raise ValueError(f"compare fits of one method, got {', '.join(sorted(methods))}: their likelihoods differ "
                         "by the approximation, not the model")
    labels = list(fits)
    ref = fits[labels[0]].model.design
    for label in labels[1:]:
        d = fits[label].model.design
        if d.nobs != ref.nobs or not np.array_equal(d.y, ref.y):
            raise ValueError(f"fits {labels[0]!r} and {label!r} are not of the same response data: their "
                             "likelihoods are not comparable")
    rows = []
    for label, fit in fits.items():
        k = int(round((fit.aic + 2 * fit.loglik) / 2))  # the parameters AIC counted
        rows.append({"label": label, "aic": fit.aic, "bic": fit.bic, "loglik": fit.loglik, "df": k,
                     "method": fit.method})
    table = pd.DataFrame(rows).set_index("label")
    table["aic_diff"] = table["aic"] - table["aic"].min()
    w = np.exp(-0.5 * table["aic_diff"])
    table["weight"] = w / w.sum()
    for col in ("lrt_against", "statistic", "lrt_df", "p_value"):
        table[col] = np.nan if col != "lrt_against" else None
    by_size = table.sort_values("df").index.tolist()
    for small, big in zip(by_size, by_size[1:]):
        try:
            test = lrt(fits[big], fits[small]).iloc[0]
        except ValueError:
            continue
        table.loc[small, ["lrt_against", "statistic", "lrt_df", "p_value"]] = [big, test["statistic"], test["df"],
                                                                                test["p_value"]]
    table = table.sort_values("aic")
    table.insert(0, "rank", np.arange(len(table)))
    return table[["rank", "aic", "aic_diff", "bic", "loglik", "df", "weight", "lrt_against", "statistic", "lrt_df",
                  "p_value", "method"]]
