"""Linear predictors and means of new or fitted data, shared by every result's ``predict``.

Levels of a grouping factor not seen in fitting get a random effect of 0 — the
population-level prediction, as lme4's ``allow.new.levels = TRUE`` — unless
``allow_new_levels=False``, which makes them an error. Levels are matched by value, whatever
the dtype of ``new_data``'s column (see :meth:`bayesglmm.design.Design.evaluate_new`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .design import NewData

__all__ = ["new_data_matrices", "linear_predictor", "to_scale", "prediction_frame", "KINDS", "PREDICT_COLUMNS"]

#: the columns of every result's ``predict()`` DataFrame
PREDICT_COLUMNS = ("estimate", "std_error", "conf_low", "conf_high")

KINDS = ("mean", "link")


def new_data_matrices(design, new_data=None, allow_new_levels: bool = True) -> NewData:
    """The fitting data's matrices (``new_data=None``) or those of ``new_data``."""
    if new_data is None:
        return NewData(X=design.X, offset=design.offset, index=tuple(b.index for b in design.random),
                       Xr=tuple(b.Xr for b in design.random))
    return design.evaluate_new(new_data, allow_new_levels=allow_new_levels)


def linear_predictor(design, new_data, beta, b=None, allow_new_levels: bool = True) -> np.ndarray:
    """η = offset + Xβ (+ the random effects ``b``, one (n_levels, n_terms) array per block)."""
    return new_data_matrices(design, new_data, allow_new_levels).eta(beta, b)


def to_scale(family, eta, kind: str):
    """``kind="link"``: η itself; ``"mean"``: g⁻¹(η) (a per-trial probability for the binomial)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be 'mean' or 'link', got {kind!r}")
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
