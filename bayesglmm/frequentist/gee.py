"""The marginal (population-averaged) model by GEE, through statsmodels.

``GLMM.fit("gee")`` fits the model's fixed part to the same response with the
model's single grouping factor as the cluster, an exchangeable working correlation by
default, and robust (sandwich) standard errors — what geepack's ``geeglm`` reports.
Binomial successes out of ``trials`` are fitted as one 0/1 row per trial in the same
cluster (the working correlation is then among the trials of a cluster).
The coefficients are **population-averaged**: for a non-identity link they are not the
GLMM's subject-specific β and are usually closer to zero (Zeger, Liang & Albert 1988).

References
----------
Liang, K.-Y. and Zeger, S. L. (1986). Longitudinal data analysis using generalized linear
models. Biometrika 73, 13–22.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from ..report import ResultDisplay
from ..results import (RE_COLUMNS, VC_COLUMNS, FitFailedError, Flag, NotApplicableError, ci_or_default, summary_table,
                       tidy_frame, wald_fixed_effects)
from ..scaling import column_frame
from .separation import check_separation

__all__ = ["GEEFit", "fit_gee", "CORRELATIONS", "sm_family"]

CORRELATIONS = ("exchangeable", "independence", "ar1")


def sm_family(family):
    """The statsmodels family (with its link) of a :class:`~bayesglmm.families.Family`: the one
    table that translates the numpy family layer to statsmodels, by the family's and link's names
    (a family or link missing here is a KeyError, not another family's model)."""
    import statsmodels.api as sm

    links = {"logit": sm.families.links.Logit, "probit": sm.families.links.Probit,
             "cloglog": sm.families.links.CLogLog, "log": sm.families.links.Log,
             "identity": sm.families.links.Identity, "inverse": sm.families.links.InversePower}
    families = {"bernoulli": sm.families.Binomial, "binomial": sm.families.Binomial,
                "poisson": sm.families.Poisson, "gaussian": sm.families.Gaussian, "gamma": sm.families.Gamma}
    return families[family.name](link=links[family.link.name]())


class GEEFit(ResultDisplay):
    """A GEE fit of the marginal model; fixed effects only (``population_averaged`` is True).

    Attributes
    ----------
    beta, vcov : ndarray
        Coefficients and their robust (sandwich) covariance.
    alpha : float
        The working correlation parameter (exchangeable), or NaN.
    correlation : str
    seconds : float
    """

    population_averaged = True
    #: GEE maximises no likelihood: no profile-likelihood intervals (``variance_components(profile=True)``
    #: raises ``ValueError``)
    can_profile = False

    def __init__(self, model, beta, vcov, alpha: float, correlation: str, converged: bool, seconds: float):
        self.model, self.method, self.correlation, self.seconds = model, "gee", correlation, seconds
        self.beta = np.asarray(beta, dtype=float)
        self.vcov = np.asarray(vcov, dtype=float)
        self.alpha = float(alpha)
        self.converged = bool(converged)
        #: structured findings (:class:`~bayesglmm.results.Flag`), e.g. ``separation``
        self.flags: list[Flag] = []
        #: BLAS threads of the fit (``fit(..., blas_threads=)``)
        self.blas_threads = 1
        if not self.converged:
            self.flags.append(Flag("not_converged", "GEE iterations did not converge"))

    def __repr__(self):
        return f"<GEEFit {self.correlation}: {self.model.formula!r}, alpha={self.alpha:.4f} (population-averaged)>"

    _no_random_text = "Random effects: none (marginal model)"

    def _summary_title(self) -> str:
        return "Marginal model fit by GEE (population-averaged coefficients, robust SEs)"

    def _summary_status(self) -> list[str]:
        return super()._summary_status() + [f"Working correlation: {self.correlation} (alpha = {self.alpha:.4f})"]

    def fixed_effects(self, ci: float | None = None) -> pd.DataFrame:
        """Population-averaged coefficients, robust SEs and Wald intervals."""
        return wald_fixed_effects(self.model.design.fixed_names, self.beta, self.vcov, self.method, ci)

    def predict(self, new_data=None, kind: str = "mean", random_effects: bool = False,
                allow_new_levels: bool = True, ci: float | None = None) -> pd.DataFrame:
        """Population-averaged predictions g⁻¹(offset + xᵀβ̂) (there are no random effects to add),
        with the columns of every result's ``predict``: the SE of η̂ is √(xᵀ V x) with V the robust
        (sandwich) covariance of :meth:`fixed_effects`, the ``ci`` interval (None: 0.95) Wald on the
        link scale; ``kind="mean"`` maps its end points through g⁻¹ and takes the SE by the delta method,
        |dμ/dη|·SE (:func:`bayesglmm.predict.wald_prediction`).

        ``kind`` is ``"mean"`` or ``"link"``; ``random_effects=True`` is an error.
        """
        from ..predict import check_kind, new_data_matrices, wald_prediction
        from .prediction import population_variance

        if random_effects:
            raise ValueError("a GEE fit has no random effects: predict with random_effects=False")
        check_kind(kind)
        level = ci_or_default(ci)
        rows = new_data_matrices(self.model.design, new_data, allow_new_levels, random_effects=False)
        var = population_variance(rows.X, self.vcov)
        se = np.sqrt(np.where(var >= 0, var, np.nan))
        return wald_prediction(self.model.family, rows.eta(self.beta), se, kind, level,
                               index=None if new_data is None else new_data.index)

    def summary(self, ci: float | None = None, profile: bool = False) -> pd.DataFrame:
        """The fixed effects in the columns of every result's summary (no variance components);
        ``profile=True`` raises ``ValueError``, as :meth:`variance_components`."""
        _refuse_profile(profile)
        return summary_table(self.fixed_effects(ci), None)

    def variance_components(self, ci: float | None = None, profile: bool = False) -> pd.DataFrame:
        """Empty: the marginal model has no random effects (the working correlation is ``alpha``).
        ``profile=True`` raises ``ValueError``: GEE maximises no likelihood (:attr:`can_profile`)."""
        ci_or_default(ci)
        _refuse_profile(profile)
        return tidy_frame([], VC_COLUMNS)

    def random_effects(self, ci: float | None = None) -> pd.DataFrame:
        """Empty: the marginal model has no random effects."""
        ci_or_default(ci)
        return tidy_frame([], RE_COLUMNS)


def _refuse_profile(profile) -> None:
    if profile:
        raise ValueError("a GEE fit has no profile-likelihood intervals: GEE maximises no likelihood, and the "
                         "marginal model has no variance components to profile; drop profile=True")


#: the most 0/1 rows a binomial GEE expands its trials into (300 rows × 5,000 trials took 1 GB and 6 s;
#: 10⁶ trials a row would need some 160 GB)
GEE_MAX_ROWS = 2_000_000


def _bernoulli_rows(y, trials, X, groups, offset):
    """Successes out of trials as one 0/1 row per trial, in the same cluster."""
    n = np.asarray(trials).astype(int)
    if np.any(n != trials) or np.any(y != np.round(y)):
        raise NotApplicableError("method 'gee' needs whole numbers of successes and trials")
    if n.sum() > GEE_MAX_ROWS:
        raise NotApplicableError(f"method 'gee' fits binomial successes as one 0/1 row per trial, in their cluster: "
                                 f"these data have {int(n.sum()):,} trials, more than the {GEE_MAX_ROWS:,} rows it "
                                 "expands to (memory); use the GLMM's methods, or GEE on proportions outside bayesglmm")
    rows = np.repeat(np.arange(len(n)), n)
    first = np.repeat(np.cumsum(n) - n, n)
    yy = (np.arange(len(rows)) - first < np.repeat(y, n)).astype(float)
    return yy, X[rows], groups[rows], offset[rows]


def fit_gee(model, correlation: str = "exchangeable") -> GEEFit:
    """Fit the marginal model of ``model`` by GEE; see the module docstring.

    Raises
    ------
    ValueError
        Without exactly one grouping factor to cluster on, for non-integer binomial
        counts, or an unknown ``correlation``.
    """
    import statsmodels.api as sm
    from statsmodels.genmod import cov_struct

    design = model.design
    if correlation not in CORRELATIONS:
        raise ValueError(f"correlation must be one of {', '.join(CORRELATIONS)}, got {correlation!r}")
    if len(design.groups) != 1:
        raise NotApplicableError(f"method 'gee' needs a single grouping factor to cluster on; this model has "
                         f"{len(design.groups)} ({', '.join(design.groups) or 'none'})")
    block = next(b for b in design.random if b.group == design.groups[0])
    structure = {"exchangeable": cov_struct.Exchangeable, "independence": cov_struct.Independence,
                 "ar1": cov_struct.Autoregressive}[correlation]()
    t0 = time.perf_counter()
    y, X, groups, offset = np.asarray(design.y), np.asarray(design.X), block.index, np.asarray(design.offset)
    if design.trials is not None and np.any(design.trials != 1):
        y, X, groups, offset = _bernoulli_rows(design.y, design.trials, X, groups, offset)
    # in the orthonormal frame of X (bayesglmm.scaling): statsmodels' iterations and convergence test
    # are on unscaled β (x·1e10 stopped at its iteration limit); β = A β̃ and its covariance mapped back
    frame = column_frame(design.X)
    gee = sm.GEE(y, X @ frame.A, groups=groups, family=sm_family(model.family), cov_struct=structure, offset=offset)
    with warnings.catch_warnings():  # statsmodels' overflow/divide chatter under separation
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            result = gee.fit(maxiter=200)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:  # e.g. every count 0
            raise FitFailedError(f"GEE failed in statsmodels ({err}){_separation_cause(model)}") from err
    A = frame.A  # β = A β̃
    alpha = float(getattr(result.model.cov_struct, "dep_params", np.nan)) if correlation != "independence" else 0.0
    fit = GEEFit(model, A @ np.asarray(result.params), A @ np.asarray(result.cov_robust) @ A.T, alpha, correlation,
                 bool(getattr(result, "converged", True)), time.perf_counter() - t0)
    if not (np.all(np.isfinite(fit.beta)) and np.all(np.isfinite(np.diag(fit.vcov)))):
        raise FitFailedError(f"GEE failed: its estimates or robust SEs are NaN/inf{_separation_cause(model)}")
    return fit


def _separation_cause(model) -> str:
    """": separation by ..." when the response sits on its bound along some column, else ""."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sep = check_separation(model.design, model.family)
    return f": separation by {'; '.join(sep)}" if sep else ""
