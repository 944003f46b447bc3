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

__all__ = ["lrt"]


def _n_params(fit):
    vc = fit.variance_components()
    n_sd = int(((vc["kind"] == "sd") & (vc["group"] != "Residual")).sum())
    return len(fit.beta), n_sd, len(fit.theta)


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
        Fits without a likelihood (PQL, GEE), of different methods or data, REML fits whose
        fixed effects differ, or models that are not nested by parameter count.
    """
    for f, name in ((full, "full"), (reduced, "reduced")):
        if not np.isfinite(getattr(f, "loglik", np.nan)):
            raise ValueError(f"the {name} fit has no likelihood (method {f.method!r}): use 'laplace', 'agq' or 'ml'")
    if full.method != reduced.method:
        raise ValueError(f"compare fits of one method, got {full.method!r} and {reduced.method!r}")
    d_full, d_red = full.model.design, reduced.model.design
    if d_full.nobs != d_red.nobs or not np.array_equal(d_full.y, d_red.y):
        raise ValueError("the two fits are not of the same response data")
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
