"""The tidy schema shared by every method's results.

Every fit — posterior or frequentist — returns pandas DataFrames with these columns,
in this order, so that :mod:`bayesglmm.compare` joins methods on labels:

``fixed_effects()``
    term, estimate, std_error, conf_low, conf_high, method
``variance_components()``
    group, term, term2, kind ("sd", "corr", or "dispersion": a dispersion family's θ or shape, group
    "Residual" and term "theta" or "shape"), estimate, std_error, conf_low, conf_high, method
``random_effects()``
    group, level, term, estimate, std_error, conf_low, conf_high, method

Methods may append columns (a posterior adds ``median``, ``r_hat`` and ``ess_bulk``).
What every result answers besides these tables is the protocol :class:`Result`.
For a Gaussian model the residual SD is the variance-component row with
group ``"Residual"`` and term ``"Residual"``, as lme4's ``VarCorr`` prints it: the pair, not the
group alone, marks it (:func:`is_residual`), so a grouping column named ``Residual`` is an ordinary
group (its rows have the term ``"(Intercept)"``, …).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Result", "Flag", "FitFailedError", "NotApplicableError", "ConvergenceWarning", "SeparationWarning", "CentringWarning", "SamplingWarning", "FIXED_COLUMNS", "VC_COLUMNS", "RE_COLUMNS", "tidy_frame", "RESIDUAL", "wald_fixed_effects",
           "is_residual", "parameter_labels", "check_ci", "combine_tables", "summary_table", "SUMMARY_COLUMNS",
           "DEFAULT_CI", "ci_or_default",
           "run_method", "MethodRun", "FIT_ERRORS"]

FIXED_COLUMNS = ("term", "estimate", "std_error", "conf_low", "conf_high", "method")
VC_COLUMNS = ("group", "term", "term2", "kind", "estimate", "std_error", "conf_low", "conf_high", "method")
RE_COLUMNS = ("group", "level", "term", "estimate", "std_error", "conf_low", "conf_high", "method")
RESIDUAL = "Residual"

#: the kinds of :class:`Flag` a result may carry
FLAG_KINDS = ("separation", "singular", "not_converged", "nan_se", "divergences", "rhat", "ess", "treedepth",
              "quadrature")


@dataclass(frozen=True)
class Flag:
    """A structured finding about a fit: ``kind`` (one of :data:`FLAG_KINDS`) and a message.

    Every result has a ``flags`` list of these; :func:`bayesglmm.compare` reads them rather
    than the text of warnings.
    """

    kind: str
    message: str

    def __str__(self):
        return f"{self.kind}: {self.message}"


class ConvergenceWarning(UserWarning):
    """The optimizer or PIRLS did not converge, the fit is singular, or a profile could not be computed."""


class SeparationWarning(UserWarning):
    """A fixed effect of a binary/binomial (or Poisson) model is (quasi-)completely separated: its MLE is
    infinite."""


class SamplingWarning(UserWarning):
    """Divergences, a large R-hat or a small effective sample size (a posterior's diagnostics)."""


class CentringWarning(UserWarning):
    """A model whose posterior depends on where a covariate is centred (a correlated random slope on
    a covariate far from 0: its intercept is at x = 0); the message names the covariate to centre."""


class NotApplicableError(ValueError):
    """A method cannot apply to the model as specified (AGQ or GEE with crossed factors, ML/REML on
    a non-Gaussian model, ``marginalize=True`` with several grouping factors).

    :func:`bayesglmm.compare` reports such a method with ``status="skipped"`` and the reason; every
    other error of a fit (a ``LinAlgError``, which NumPy makes a ``ValueError`` too, or
    :class:`FitFailedError`) is ``status="failed"``.
    """


class FitFailedError(RuntimeError):
    """A method applied to the model but broke (e.g. GEE's estimates are NaN under separation).

    :func:`bayesglmm.compare` reports such a method with ``status="failed"`` and the reason;
    a method that cannot apply raises ``ValueError`` instead (``status="skipped"``).
    """


@runtime_checkable
class Result(Protocol):
    """What every result answers, whatever method made it: :class:`~bayesglmm.bayes.posterior.Posterior`
    (NUTS), :class:`~bayesglmm.frequentist.MLFit` (Laplace, AGQ, ML, REML), ``PQLFit`` and
    :class:`~bayesglmm.frequentist.gee.GEEFit`. ``isinstance(x, Result)`` checks that ``x`` has every
    member; every result also prints like lme4's ``summary()`` (its base,
    :class:`bayesglmm.report.ResultDisplay`, owns ``__str__`` and ``_repr_html_``).

    Every table method takes ``ci`` (an interval probability strictly between 0 and 1; None:
    :data:`DEFAULT_CI`, or a posterior's own ``ci``) and returns the columns of this module's schema.

    Attributes
    ----------
    method : str
        The method that made the result (``"nuts"``, ``"laplace"``, ``"agq"``, ``"pql"``, ``"gee"``,
        ``"ml"``, ``"reml"``): the ``method`` column of its tables.
    model : GLMM
        The model fitted.
    flags : list of Flag
        Structured findings (separation, singular fit, convergence, sampler diagnostics).
    can_profile : bool
        Whether ``variance_components(profile=True)`` gives profile-likelihood intervals (a fit that
        maximised a likelihood: Laplace, AGQ, ML, REML); the other results refuse ``profile=True``
        with a ``ValueError`` saying why rather than ignore it.
    """

    method: str
    model: Any
    flags: list
    can_profile: bool

    def fixed_effects(self, ci: float | None = None) -> pd.DataFrame:
        """The fixed effects: :data:`FIXED_COLUMNS`."""

    def variance_components(self, ci: float | None = None, profile: bool = False) -> pd.DataFrame:
        """The random-effect SDs and correlations (and a Gaussian model's residual SD): :data:`VC_COLUMNS`."""

    def random_effects(self, ci: float | None = None) -> pd.DataFrame:
        """The predicted random effects per group, level and term: :data:`RE_COLUMNS`."""

    def summary(self, ci: float | None = None, profile: bool = False) -> pd.DataFrame:
        """Fixed effects and variance components in one table: :data:`SUMMARY_COLUMNS`."""

    def predict(self, new_data=None, kind: str = "mean", random_effects: bool = True,
                allow_new_levels: bool = True, ci: float | None = None) -> pd.DataFrame:
        """The mean (``kind="mean"``) or linear predictor (``"link"``) of each row of ``new_data`` (the
        fitting data when None): ``estimate``, ``std_error``, ``conf_low``, ``conf_high`` (a ``ci``
        interval: a posterior's quantiles, a point fit's Wald interval on the link scale), the rows' index."""

    def _repr_html_(self) -> str:
        """The printed summary as HTML, for a notebook."""


#: the errors by which a method that applied to a model broke (``status="failed"``); NumPy's
#: ``LinAlgError`` is a ``ValueError``, and so is :class:`NotApplicableError` (``status="skipped"``)
FIT_ERRORS = (ValueError, FloatingPointError, FitFailedError)


@dataclass
class MethodRun:
    """One method run on one model by :func:`run_method`, and how it went.

    Attributes
    ----------
    method : str
    status : {"ok", "skipped", "failed"}
        ``"skipped"``: the method cannot apply to the model (:class:`NotApplicableError`);
        ``"failed"``: it applied and broke (another of :data:`FIT_ERRORS`, or the sampler's
        ``SamplingError``).
    result : Result or None
        The fit or posterior (None unless ``"ok"``).
    value : object
        What ``read(result)`` returned (None without ``read``, or unless ``"ok"``).
    error : Exception or None
        Why it was skipped or failed.
    seconds : float
        Wall time of the run: the update of the model, the fit and ``read``.
    caught : list of warnings.WarningMessage
        The warnings the run raised, recorded rather than shown: the caller decides which to show.
    """

    method: str
    status: str
    result: Any = None
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    caught: list = field(default_factory=list)

    @property
    def reason(self) -> str:
        """Why the method was skipped or failed, as :func:`bayesglmm.compare` reports it: the error's
        message (a numerical error's prefixed by its type, ``"LinAlgError: ..."``); "" when ``"ok"``."""
        if self.error is None:
            return ""
        if isinstance(self.error, (NotApplicableError, FitFailedError)):
            return str(self.error)
        return f"{type(self.error).__name__}: {self.error}"


def run_method(model, method: str, *, data=None, priors=None, read=None, **options) -> MethodRun:
    """Run one method on ``model`` and classify the outcome: ``"ok"``, ``"skipped"`` (it cannot apply)
    or ``"failed"`` (it applied and broke), as :func:`bayesglmm.compare`, the simulation studies,
    the parametric bootstrap and :func:`bayesglmm.naive_vs_clustered` report it.

    Parameters
    ----------
    model : GLMM
    method : str
        ``"nuts"`` (:meth:`GLMM.sample <bayesglmm.GLMM.sample>`) or a method of
        :meth:`GLMM.fit <bayesglmm.GLMM.fit>`.
    data : pandas.DataFrame, optional
        Refit ``model`` to these data (``model.update(data)``), inside the classification.
    priors : dict, optional
        Prior overrides (``model.update(priors=priors)``), inside the classification.
    read : callable, optional
        Called with the result inside the classification (e.g. the tables wanted of it): an error
        there classifies the run as an error of the fit would; its value is the run's ``value``.
    **options
        Passed to ``sample`` or ``fit``.

    Returns
    -------
    MethodRun
        The result (``"ok"``) or the error (``"skipped"``: :class:`NotApplicableError`; ``"failed"``:
        another of :data:`FIT_ERRORS`, or PyMC's ``SamplingError`` for ``"nuts"``), the wall time and
        the warnings raised, recorded. Any other exception (a ``TypeError`` for an unknown option,
        say) propagates: it is a mistake of the call, not an outcome of the method.
    """
    errors = FIT_ERRORS
    if method == "nuts":
        from pymc.exceptions import SamplingError

        errors = (*errors, SamplingError)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            target = model if data is None and priors is None else model.update(data, priors)
            result = target.sample(**options) if method == "nuts" else target.fit(method, **options)
            value = None if read is None else read(result)
        except errors as err:
            status = "skipped" if isinstance(err, NotApplicableError) else "failed"
            return MethodRun(method, status, error=err, seconds=time.perf_counter() - t0, caught=list(caught))
    return MethodRun(method, "ok", result, value, seconds=time.perf_counter() - t0, caught=list(caught))


def tidy_frame(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows (dicts) → a DataFrame with the schema's columns first, extras after.

    Raises
    ------
    KeyError
        If a row lacks one of the schema's columns.
    """
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=list(columns))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"result rows lack the schema columns {missing}")
    extra = [c for c in frame.columns if c not in columns]
    return frame[list(columns) + extra]


#: the interval probability of every table when ``ci`` is not given (``None``)
DEFAULT_CI = 0.95


def ci_or_default(ci) -> float:
    """``ci`` checked (:func:`check_ci`), or :data:`DEFAULT_CI` for None: every point fit's tables take
    ``ci=None`` as a posterior's do."""
    return DEFAULT_CI if check_ci(ci, allow_none=True) is None else ci


def check_ci(ci, name: str = "ci", allow_none: bool = False):
    """``ci`` itself if it is an interval probability, 0 < ci < 1 (or None, where ``allow_none``:
    a posterior's default); else a ``ValueError`` naming the argument (``name``). Every table's ``ci=``
    goes through it: ``ci=1.5`` gave NaN intervals and ``ci=-0.2`` intervals with ``conf_low > conf_high``."""
    if ci is None and allow_none:
        return ci
    if isinstance(ci, (bool, np.bool_)) or not isinstance(ci, (int, float, np.integer, np.floating)) or not 0 < ci < 1:
        raise ValueError(f"{name} must be a probability strictly between 0 and 1, e.g. 0.95 for a 95% interval; "
                         f"got {ci!r}")
    return ci


def wald_fixed_effects(names, beta, vcov, method: str, ci: float | None = None) -> pd.DataFrame:
    """The ``fixed_effects()`` table of a frequentist fit: SEs from ``vcov``, Wald intervals."""
    ci = ci_or_default(ci)
    se = np.sqrt(np.diag(vcov))
    z = stats.norm.ppf(0.5 + ci / 2)
    rows = [{"term": t, "estimate": b, "std_error": s, "conf_low": b - z * s, "conf_high": b + z * s,
             "method": method} for t, b, s in zip(names, beta, se)]
    return tidy_frame(rows, FIXED_COLUMNS)


def is_residual(vc: pd.DataFrame) -> np.ndarray:
    """Which ``variance_components()`` rows are the residual SD: group *and* term ``"Residual"``
    (a random block's terms are model-matrix columns, so a grouping column named ``Residual`` does
    not make one; :func:`bayesglmm.make_design` refuses the one way it could, ``(0 + Residual | Residual)``)."""
    return ((vc["group"] == RESIDUAL) & (vc["term"] == RESIDUAL)).to_numpy(dtype=bool)


def parameter_labels(vc: pd.DataFrame, fixed_names=()) -> list[str]:
    """One label per ``variance_components()`` row: ``sd(term|group)``, ``corr(t1,t2|group)``, ``sigma``,
    a dispersion's ``theta`` or ``shape``.

    ``fixed_names``: the model's fixed-effect labels, which share the ``parameter`` column; when one
    of them is ``"sigma"`` (a covariate of that name) the residual SD is ``"sd(Residual)"`` instead."""
    fixed = set(fixed_names)
    sigma = "sd(Residual)" if "sigma" in fixed else "sigma"

    def label(res, g, t, t2, k):
        if res:
            return sigma
        if k == "dispersion":  # a dispersion family's θ or shape: its name, unless a covariate has it
            return f"dispersion({t})" if t in fixed else t
        return f"sd({t}|{g})" if k == "sd" else f"corr({t},{t2}|{g})"

    return [label(*row) for row in zip(is_residual(vc), vc["group"], vc["term"], vc["term2"], vc["kind"])]


def combine_tables(fe: pd.DataFrame, vc: pd.DataFrame | None) -> pd.DataFrame:
    """Fixed effects and variance components in one table, labelled by ``parameter``
    (the term for a fixed effect, see :func:`parameter_labels` otherwise) and ``kind``
    (``"fixed"``, ``"sd"``, ``"corr"``)."""
    parts = [fe.assign(parameter=fe["term"], kind="fixed", group=None, term2=None)]
    if vc is not None and len(vc):
        parts.append(vc.assign(parameter=parameter_labels(vc, fe["term"])))
    out = pd.concat(parts, ignore_index=True)
    first = ["parameter", "kind", "group", "term", "term2"]
    return out[first + [c for c in out.columns if c not in first]]


#: the columns of every result's ``summary()``, in order; NaN where a method has no value
SUMMARY_COLUMNS = ("parameter", "kind", "group", "term", "term2", "estimate", "std_error", "conf_low",
                   "conf_high", "median", "r_hat", "ess_bulk", "method")


def summary_table(fe: pd.DataFrame, vc: pd.DataFrame | None) -> pd.DataFrame:
    """``summary()`` of any result: :func:`combine_tables` with exactly :data:`SUMMARY_COLUMNS`
    (a posterior fills ``median``, ``r_hat``, ``ess_bulk``; a point fit leaves them NaN)."""
    out = combine_tables(fe, vc)
    for c in SUMMARY_COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    return out[list(SUMMARY_COLUMNS)]
