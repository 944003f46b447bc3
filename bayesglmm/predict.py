"""Linear predictors and means of new or fitted data, shared by every result's ``predict``.

Levels of a grouping factor not seen in fitting get a random effect of 0 — the
population-level prediction, as lme4's ``allow.new.levels = TRUE`` — unless
``allow_new_levels=False``, which makes them an error. Levels are matched by value, whatever
the dtype of ``new_data``'s column (see :meth:`bayesglmm.design.Design.evaluate_new`).

A point fit's intervals are Wald intervals on the link scale (:func:`wald_prediction`): η̂ ± z·SE,
mapped through g⁻¹ for the mean, with the mean's standard error by the delta method, |dμ/dη|·SE,
as glmmTMB's ``predict(..., se.fit = TRUE, type = "response")``. The SEs of the link are the
method's: :mod:`bayesglmm.frequentist.prediction` for the ML, REML, Laplace, AGQ and PQL fits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .design import NewData

__all__ = ["new_data_matrices", "linear_predictor", "to_scale", "check_kind", "prediction_frame", "wald_prediction",
           "KINDS", "PREDICT_COLUMNS"]

#: the columns of every result's ``predict()`` DataFrame
PREDICT_COLUMNS = ("estimate", "std_error", "conf_low", "conf_high")

KINDS = ("mean", "link")


def new_data_matrices(design, new_data=None, allow_new_levels: bool = True, random_effects: bool = True) -> NewData:
    """The fitting data's matrices (``new_data=None``) or those of ``new_data``; with
    ``random_effects=False`` the fixed part only (``new_data`` needs no grouping column)."""
    if new_data is None:
        blocks = design.random if random_effects else ()
        return NewData(X=design.X, offset=design.offset, index=tuple(b.index for b in blocks),
                       Xr=tuple(b.Xr for b in blocks))
    return design.evaluate_new(new_data, allow_new_levels=allow_new_levels, random_effects=random_effects)


def linear_predictor(design, new_data, beta, b=None, allow_new_levels: bool = True) -> np.ndarray:
    """η = offset + Xβ (+ the random effects ``b``, one (n_levels, n_terms) array per block)."""
    return new_data_matrices(design, new_data, allow_new_levels).eta(beta, b)


def check_kind(kind) -> str:
    """``kind`` itself if it is one of :data:`KINDS`, else a ``ValueError`` naming the argument."""
    if kind not in KINDS:
        raise ValueError(f"kind must be 'mean' or 'link', got {kind!r}")
    return kind


def to_scale(family, eta, kind: str):
    """``kind="link"``: η itself; ``"mean"``: g⁻¹(η) (a per-trial probability for the binomial)."""
    check_kind(kind)
    return np.asarray(eta) if kind == "link" else family.link.inverse(np.asarray(eta))


def prediction_frame(estimate, std_error=None, conf_low=None, conf_high=None, index=None) -> pd.DataFrame:
    """The ``predict()`` table shared by every result: one row per predicted row, the columns
    :data:`PREDICT_COLUMNS`; NaN where a method has no value (a point fit has no interval)."""
    est = np.asarray(estimate, dtype=float)
    nan = np.full(est.shape, np.nan)
    cols = {"estimate": est}
    for name, v in (("std_error", std_error), ("conf_low", conf_low), ("conf_high", conf_high)):
        cols[name] = nan if v is None else np.asarray(v, dtype=float)
    return pd.DataFrame(cols, index=index)


def wald_prediction(family, eta, std_error, kind: str, ci: float, index=None) -> pd.DataFrame:
    """The ``predict()`` table of a point fit from η̂ and its standard error on the link scale.

    Parameters
    ----------
    family : Family
    eta, std_error : ndarray, shape (n,)
        η̂ and SE(η̂) (NaN where the fit has none: the interval is NaN there too).
    kind : {"mean", "link"}
    ci : float
        Interval probability (checked by the caller).
    index : pandas.Index, optional

    Returns
    -------
    pandas.DataFrame
        ``kind="link"``: η̂, SE, η̂ ± z·SE (z the normal quantile of ``ci``). ``kind="mean"``: g⁻¹(η̂),
        the delta method's |dμ/dη|·SE, and the link-scale interval's end points mapped through g⁻¹
        (inside the mean's range, and not symmetric about it); R: ``predict(fit, newdata, se.fit = TRUE,
        type = "link")`` gives η̂ and SE, ``type = "response"`` g⁻¹(η̂) and the delta-method SE
        (glmmTMB), and ``g⁻¹(fit ± qnorm(0.975) * se.fit)`` of the link's the interval.
    """
    z = stats.norm.ppf(0.5 + ci / 2)
    eta, se = np.asarray(eta, dtype=float), np.asarray(std_error, dtype=float)
    low, high = eta - z * se, eta + z * se
    if check_kind(kind) == "link":
        return prediction_frame(eta, se, low, high, index=index)
    inverse = family.link.inverse
    a, b = inverse(low), inverse(high)  # g⁻¹ is monotone, increasing or not
    return prediction_frame(inverse(eta), np.abs(family.link.inverse_deriv(eta)) * se, np.minimum(a, b),
                            np.maximum(a, b), index=index)
