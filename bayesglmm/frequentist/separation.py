"""Separation: a fixed effect whose maximum-likelihood estimate is infinite, found from the data.

Under (quasi-)complete separation the likelihood of a Bernoulli/binomial model (or of a Poisson
model with zero counts) increases without bound along some direction of β; the fits then stop at
large, meaningless estimates. :func:`check_separation` names the terms (a 0/1 column, the whole
response on its bound, or a combination of columns found exactly by a linear program), every
engine's flags and GEE's failure message use it.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..results import SeparationWarning
from ..scaling import column_frame, constant_column

__all__ = ["check_separation", "separating_direction", "SEPARATION_SUBSAMPLE"]


def check_separation(design, family, stacklevel=3) -> list[str]:
    """Warn, naming the terms, when the response's bound makes the fixed effects' MLE infinite.

    For a Bernoulli/binomial response, a 0/1 column of X separates when all the observations
    where it is 1 (or all where it is 0) have the same outcome — every trial a success or every
    one a failure; for counts (Poisson), when all of them are 0. The likelihood then increases
    without bound along that coefficient. The intercept is named when the whole response sits on
    the bound (every count 0, every trial a success or every one a failure). Separation by a
    combination of columns (x > c, or x and a factor together) is found exactly by the linear
    program of :func:`separating_direction`, which names the terms of the direction along which
    the likelihood increases without bound. Nothing here depends on where or in what units a
    covariate is measured: the estimates' size is not the test (a year-valued covariate, an
    interaction with one, made the intercept and the factor's coefficients large and "separated").

    Returns
    -------
    list of str
        The findings, one per term or combination.
    """
    bounded = family.counts_successes or (not family.has_scale and family.canonical)  # Poisson: the log link
    if not bounded:
        return []
    y = design.y
    n = np.ones_like(y) if design.trials is None else design.trials
    upper = family.counts_successes  # a count has no upper bound
    found = []
    X = np.asarray(design.X, dtype=float)
    binary = [bool(np.all(np.isin(X[:, j], (0.0, 1.0)))) for j in range(X.shape[1])]
    j0 = constant_column(X)

    def on_bound(mask):
        if y[mask].sum() == 0:
            return "failures" if upper else "zero counts"
        if upper and y[mask].sum() == n[mask].sum():
            return "successes"
        return None

    def says(outcome, where=""):
        if upper:
            return f"every observation{where} is all {outcome}"
        return f"every count{where} is 0"

    if j0 is not None and (side := on_bound(np.ones(len(y), dtype=bool))):
        found.append(f"{design.fixed_names[j0]!r} ({says(side)}: the random-effect SDs are not estimable either)")
    for j, name in enumerate(design.fixed_names):
        if j == j0 or not binary[j]:
            continue
        col = X[:, j]
        for value, mask in (("1", col == 1), ("0", col == 0)):
            if mask.any() and (outcome := on_bound(mask)):
                found.append(f"{name!r} ({says(outcome, f' with {name} = {value}')})")
                break
    if not found:
        d = separating_direction(X, y, n, upper)
        if d is not None:
            size = np.abs(d) * np.sqrt(np.mean(X**2, axis=0))
            terms = [design.fixed_names[j] for j in np.argsort(-size) if size[j] > 1e-6 * size.max()]
            found.append(f"a combination of {', '.join(map(repr, terms))} (the linear predictor along it "
                         f"separates the {'successes from the failures' if upper else 'zero counts from the others'})")
    if found:
        warnings.warn("complete or quasi-complete separation: " + "; ".join(found)
                      + ". Its coefficient has no finite MLE: the estimate and SE are meaningless "
                      "(drop or merge the level, or use model.sample(): NUTS runs on these data because the "
                      "proper prior on the coefficient keeps its posterior proper).",
                      SeparationWarning, stacklevel=stacklevel)
    return found


#: rows of the subsample :func:`separating_direction` tries first on larger data
SEPARATION_SUBSAMPLE = 500


def separating_direction(X, y, n, upper: bool = True, tol: float = 1e-7):
    """A direction d ≠ 0 along which the log-likelihood of a GLM increases without bound, or None:
    Xᵢd ≥ 0 where every trial is a success, Xᵢd ≤ 0 where every one is a failure (or a count is 0),
    Xᵢd = 0 elsewhere, some row strictly (Konis 2007's linear program, as R's detectseparation).
    Solved by HiGHS in the orthonormal frame of X (:func:`bayesglmm.scaling.column_frame`:
    |d̃ⱼ| ≤ 1, the objective Σ ± Xᵢd of order one when there is a direction) and returned on X's
    columns, d = A d̃.

    References
    ----------
    Konis, K. (2007). Linear programming algorithms for detecting separated data in binary
    logistic regression models. DPhil thesis, University of Oxford.
    """
    from scipy.optimize import linprog

    X, y, n = np.asarray(X, dtype=float), np.asarray(y, dtype=float), np.asarray(n, dtype=float)
    if len(y) > SEPARATION_SUBSAMPLE:  # a direction for all rows is one for any subset of them: when a
        # subset has none, neither do all (most data: 2 ms against 10 ms for ohio's 2,148 rows, 0.7 s for 100,000)
        rows = np.random.default_rng(0).choice(len(y), SEPARATION_SUBSAMPLE, replace=False)
        if separating_direction(X[rows], y[rows], n[rows], upper, tol) is None:
            return None
    frame = column_frame(X)
    Xt = X @ frame.A
    low = y == 0
    high = (y == n) & upper & ~low
    mid = ~(low | high)
    sign = np.where(high, 1.0, -1.0)
    bound = low | high
    if not bound.any():
        return None
    c = -(sign[bound, None] * Xt[bound]).sum(axis=0)  # maximise Σ ±Xᵢd over the rows on a bound
    res = linprog(c, A_ub=-(sign[bound, None] * Xt[bound]), b_ub=np.zeros(int(bound.sum())),
                  A_eq=Xt[mid] if mid.any() else None, b_eq=np.zeros(int(mid.sum())) if mid.any() else None,
                  bounds=[(-1.0, 1.0)] * X.shape[1], method="highs")
    if res.status != 0 or -res.fun <= tol * max(1.0, float(bound.sum())):
        return None
    return frame.A @ res.x
