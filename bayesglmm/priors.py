"""Proper priors only: descriptions, data-scaled defaults, and the refusal of flat ones.

The objects here are plain descriptions (no PyMC import); :mod:`bayesglmm.bayes`
turns them into random variables.

Where each prior goes
---------------------
``GLMM(..., priors={...})`` takes a dict whose keys say where a prior applies; a
more specific key wins over a general one:

==========================  ==========================================================
key                         applies to
==========================  ==========================================================
``"fixed"``                 every fixed-effect coefficient except the intercept
``"(Intercept)"``           the fixed intercept (``"Intercept"`` is accepted too); a
                            :class:`CenteredIntercept` puts its prior at the other
                            columns' means, as bambi and rstanarm do
a fixed-effect label        that coefficient, e.g. ``"WSf"``, ``"period[2]"`` (a label that is one of
                            the keys ``fixed``, ``sd``, ``corr``, ``sigma`` keeps those keys'
                            meaning: such a coefficient takes ``"fixed"`` or its default)
``"sd"``                    every random-effect standard deviation
``"sd|GROUP"``              every SD of one grouping factor, e.g. ``"sd|Female"``
``"TERM|GROUP"``            one SD, as lme4 writes it: ``"1|Female"``, ``"Days|Subject"``
``"corr"``                  the correlation matrix of every correlated block (LKJ)
``"corr|GROUP"``            the correlations of one grouping factor
``"sigma"``                 the residual SD of a Gaussian model
``"dispersion"``            a dispersion family's 1/√θ (negative binomial, beta-binomial) or
                            1/√shape (Gamma): a scale, as an SD (the model's ``theta`` or
                            ``shape`` is 1/scale²)
==========================  ==========================================================

Allowed priors: fixed effects :class:`Normal`, :class:`StudentT`; standard deviations
:class:`HalfNormal`, :class:`HalfStudentT`, :class:`HalfCauchy`, :class:`Exponential`,
:class:`Uniform` ``(0, upper)`` on the SD, :class:`InverseGamma` on the variance;
correlations :class:`LKJ`. :class:`Flat` and :class:`HalfFlat` exist only so that
asking for them gives a clear refusal: a flat prior on a variance component can
make the posterior improper (Natarajan & McCulloch 1995; Hobert & Casella 1996).

Defaults (:func:`default_priors`)
---------------------------------
With ``s = sd(y)`` for a Gaussian model and ``s = 1`` otherwise (the link scale):

* intercept: ``Normal(m, 5 s)`` on the intercept **at the other columns' means** (a
  :class:`CenteredIntercept`, as bambi, rstanarm and brms put it), ``m = mean(y)`` for a Gaussian
  identity-link model, else 0; the prior then does not depend on where a covariate is centred
  (on the raw intercept, a year-valued covariate put it 2,000 units from the data);
* other fixed effects: ``Normal(0, 2.5 s / sd(x_j))`` (as rstanarm's autoscaled prior), ``sd(x_j)``
  the column's spread after the other columns are regressed out (:func:`partial_sd`: its SD for a
  single covariate; for x² beside x, or a factor beside its interaction with x, what does not
  depend on where x is centred);
* each random-effect SD: ``HalfNormal(2.5 s / sd(x_t))``, with ``sd(x_t) = 1`` for an intercept,
  whose SD in a correlated block is at the slopes' zero: ``HalfNormal(2.5 s √(1 + Σ (x̄_t/sd(x_t))²))``
  (:func:`sd_scales`);
* correlations: ``LKJ(eta=2)``, mildly favouring small correlations;
* Gaussian residual SD: ``HalfStudentT(nu=3, sigma=s)``;
* a dispersion family's dispersion: ``HalfNormal(2.5)`` on δ = 1/√φ (φ the negative binomial's or
  beta-binomial's θ, the Gamma's shape), the scale of the SD priors on the link scale. δ is the
  coefficient of variation of the negative binomial's gamma multiplier (y | ε ~ Poisson(με),
  SD(ε) = δ: an observation-level random effect's SD on the log scale, to first order) and of a
  Gamma response (glmmTMB's ``sigma``), and √(ρ/(1 − ρ)) of the beta-binomial's intra-class
  correlation ρ; δ = 0 is the Poisson's, the binomial's or a noiseless limit, which a half-normal
  on δ (a penalised-complexity-style prior, Simpson et al. 2017; the Stan prior choice
  recommendations put one on the negative binomial's 1/√φ) keeps in reach, unlike a prior on φ
  itself such as brms's ``gamma(0.01, 0.01)``.

References
----------
Natarajan, R. and McCulloch, C. E. (1995). A note on the existence of the posterior
distribution for a class of mixed models for binomial responses. Biometrika 82, 639–643.
Gelman, A. (2006). Prior distributions for variance parameters in hierarchical models.
Bayesian Analysis 1, 515–534.
Simpson, D., Rue, H., Riebler, A., Martins, T. G. and Sørbye, S. H. (2017). Penalising model
component complexity: a principled, practical approach to constructing priors. Statistical
Science 32, 1–28.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .design import INTERCEPT, Design

__all__ = [
    "Prior", "Normal", "StudentT", "CenteredIntercept", "HalfNormal", "HalfStudentT", "HalfCauchy", "Exponential",
    "Uniform", "InverseGamma", "LKJ", "Flat", "HalfFlat", "ImproperPriorError",
    "default_priors", "resolve_priors", "ResolvedPriors", "partial_sd", "sd_scales",
]


class ImproperPriorError(ValueError):
    """A flat or otherwise improper prior was asked for."""


def _positive(name, value, owner):
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
        raise ImproperPriorError(f"{owner}: {name} must be a finite positive number, got {value!r}")


@dataclass(frozen=True)
class Prior:
    """Base class of the prior descriptions."""

    #: what the prior may be put on: "location", "scale", "variance" or "corr"
    role = "location"

    def __post_init__(self):
        self.check()

    def check(self):
        for f in fields(self):
            if f.name not in ("mu",):
                _positive(f.name, getattr(self, f.name), type(self).__name__)

    @property
    def params(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __str__(self):
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True)
class Normal(Prior):
    """Normal(mu, sigma), for fixed effects."""

    mu: float = 0.0
    sigma: float = 1.0


@dataclass(frozen=True)
class StudentT(Prior):
    """Student-t(nu, mu, sigma), for fixed effects."""

    nu: float = 3.0
    mu: float = 0.0
    sigma: float = 1.0


@dataclass(frozen=True)
class CenteredIntercept(Prior):
    """A Normal or StudentT prior on the intercept **at the other columns' means**.

    The prior of ``prior`` is put on ``β₀ + Σⱼ x̄ⱼ βⱼ``, the linear predictor at the mean of
    every other fixed-effect column, rather than on β₀ (the predictor at zero). This is
    bambi's ``center_predictors=True``, rstanarm's ``prior_intercept`` and brms'
    ``Intercept`` class; :func:`~bayesglmm.from_bambi` uses it for a bambi model that centres
    its predictors. The posterior still reports β₀ itself. The map from (β₀, β) to the
    centred intercept is a shear with Jacobian 1, so the joint prior stays proper.
    Only for the key ``"(Intercept)"``.
    """

    prior: Prior = None

    def check(self):
        if not isinstance(self.prior, (Normal, StudentT)):
            raise TypeError(f"CenteredIntercept takes a Normal or StudentT prior, got {self.prior!r}")

    @property
    def params(self) -> dict:
        return self.prior.params

    def __str__(self):
        return f"{self.prior} at the columns' means"


@dataclass(frozen=True)
class HalfNormal(Prior):
    """Half-normal(sigma) on a standard deviation."""

    role = "scale"
    sigma: float = 1.0


@dataclass(frozen=True)
class HalfStudentT(Prior):
    """Half-Student-t(nu, sigma) on a standard deviation."""

    role = "scale"
    nu: float = 3.0
    sigma: float = 1.0


@dataclass(frozen=True)
class HalfCauchy(Prior):
    """Half-Cauchy(beta) on a standard deviation (Gelman 2006)."""

    role = "scale"
    beta: float = 1.0


@dataclass(frozen=True)
class Exponential(Prior):
    """Exponential(lam) on a standard deviation (rate ``lam``)."""

    role = "scale"
    lam: float = 1.0


@dataclass(frozen=True)
class Uniform(Prior):
    """Uniform(lower=0, upper) on a standard deviation; ``upper`` must be finite."""

    role = "scale"
    lower: float = 0.0
    upper: float = 100.0

    def check(self):
        if self.lower != 0:
            raise ImproperPriorError(f"Uniform prior on a standard deviation must start at 0, got lower={self.lower!r}")
        if not (isinstance(self.upper, (int, float)) and math.isfinite(self.upper)):
            raise ImproperPriorError(
                f"Uniform(0, {self.upper}) is improper: an unbounded uniform prior on a standard "
                "deviation can give an improper posterior (Natarajan & McCulloch 1995); give a finite upper bound"
            )
        _positive("upper", self.upper, "Uniform")


@dataclass(frozen=True)
class InverseGamma(Prior):
    """Inverse-gamma(alpha, beta) on the **variance** σ²."""

    role = "variance"
    alpha: float = 1.0
    beta: float = 1.0


@dataclass(frozen=True)
class LKJ(Prior):
    """LKJ(eta) on a correlation matrix; eta = 1 is uniform, larger shrinks towards 0."""

    role = "corr"
    eta: float = 2.0


_WHY = ("bayesglmm uses proper priors only: a flat prior on a variance component can make "
        "the posterior improper (Natarajan & McCulloch 1995), and NUTS then samples nonsense "
        "without complaint. Use e.g. HalfNormal, HalfStudentT or Exponential on an SD, or "
        "Normal/StudentT on a fixed effect.")


class Flat:
    """Refused: an improper flat prior. Exists to give a clear error."""

    def __init__(self, *args, **kwargs):
        raise ImproperPriorError(f"Flat() is improper. {_WHY}")


class HalfFlat(Flat):
    """Refused: an improper flat prior on (0, ∞). Exists to give a clear error."""

    def __init__(self, *args, **kwargs):
        raise ImproperPriorError(f"HalfFlat() is improper. {_WHY}")


_ROLES_FOR = {
    "fixed": ("location",),
    "sd": ("scale", "variance"),
    "corr": ("corr",),
    "sigma": ("scale", "variance"),
    "dispersion": ("scale", "variance"),
}


def _coerce(value, key: str, target: str) -> Prior:
    """Check that ``value`` is an allowed prior for ``target`` ("fixed", "sd", "corr", "sigma")."""
    name = value if isinstance(value, str) else getattr(value, "__name__", type(value).__name__)
    if str(name).lower() in ("flat", "halfflat", "improper", "none") or value is None:
        raise ImproperPriorError(f"priors[{key!r}] = {name}: {_WHY}")
    if not isinstance(value, Prior):
        raise TypeError(
            f"priors[{key!r}] must be a bayesglmm.priors object (e.g. HalfNormal(1)), "
            f"got {value!r}"
        )
    if value.role not in _ROLES_FOR[target]:
        allowed = {"fixed": "Normal or StudentT", "sd": "HalfNormal, HalfStudentT, HalfCauchy, "
                   "Exponential, Uniform(0, upper) or InverseGamma (on the variance)",
                   "corr": "LKJ", "sigma": "HalfNormal, HalfStudentT, HalfCauchy, Exponential, "
                   "Uniform(0, upper) or InverseGamma",
                   "dispersion": "HalfNormal, HalfStudentT, HalfCauchy, Exponential, Uniform(0, upper) or "
                   "InverseGamma (on 1/√θ or 1/√shape)"}[target]
        raise TypeError(f"priors[{key!r}] = {value}: a {target} prior must be {allowed}")
    return value


@dataclass(frozen=True)
class ResolvedPriors:
    """The prior of every parameter of a model, after defaults and overrides.

    Attributes
    ----------
    fixed : tuple of Prior
        One per column of ``X``.
    sd : tuple of tuple of Prior
        One tuple per random block, one prior per term.
    corr : tuple of (LKJ or None)
        One per random block; None when the block has no correlations.
    sigma : Prior or None
        Residual SD prior (Gaussian only).
    dispersion : Prior or None
        A dispersion family's prior on 1/√θ or 1/√shape (None for the other families).
    center : tuple of float or None
        With a :class:`CenteredIntercept`: one number per column of ``X``, the column's mean
        (0 at the intercept), so that the intercept's prior is on ``β₀ + Σ centerⱼ βⱼ``; else None.
    """

    fixed: tuple
    sd: tuple
    corr: tuple
    sigma: Prior | None
    labels: tuple = ()
    center: tuple | None = None
    dispersion: Prior | None = None

    def table(self):
        """The priors as a tidy DataFrame with columns ``parameter`` and ``prior``."""
        import pandas as pd

        return pd.DataFrame(list(self.labels), columns=["parameter", "prior"])


def _scale(design: Design, family) -> tuple[float, float]:
    if family.has_scale:  # a Gaussian response: priors on its scale
        s = float(np.std(design.y))
        s = s if s > 0 else 1.0
        m = float(np.mean(design.y)) if family.link.is_identity else 0.0
        return s, m
    return 1.0, 0.0


def default_priors(design: Design, family) -> dict:
    """The data-scaled default priors (see the module docstring for the rule).

    Returns
    -------
    dict
        Keys as in the module docstring: each fixed-effect label, each ``"TERM|GROUP"``,
        ``"corr|GROUP"`` for correlated blocks, ``"sigma"`` for Gaussian models and ``"dispersion"``
        for the dispersion families.
    """
    s, _ = _scale(design, family)
    # a coefficient whose label is a reserved key (a covariate named "sigma") keeps its default in
    # resolve_priors but has no key of its own here: "sigma" is the residual SD's
    out = {name: p for name, p in zip(design.fixed_names, _default_fixed(design, family)) if name not in RESERVED_KEYS}
    for block in design.random:
        for t, term, scale in zip(range(block.n_terms), block.terms, sd_scales(block)):
            out[_sd_key(term, block.group)] = HalfNormal(2.5 * s * scale)
        if block.has_correlation:
            out[f"corr|{block.group}"] = LKJ(2.0)
    if family.has_scale:
        out["sigma"] = HalfStudentT(3.0, s)
    if family.has_dispersion:
        out["dispersion"] = HalfNormal(2.5)
    return out


#: keys that name groups of parameters or the residual SD, never a coefficient of that name
RESERVED_KEYS = frozenset({"fixed", "sd", "corr", "sigma", "dispersion"})


def partial_sd(X) -> np.ndarray:
    """Each column's root-mean-square after every other column (the intercept among them) is
    regressed out: 1/‖Aⱼ‖ with A the orthonormal frame of X (:func:`bayesglmm.scaling.column_frame`,
    (XᵀX)⁻¹ = AAᵀ/n). For a single covariate beside an intercept it is its SD. It does not depend on
    where a covariate is centred: x² beside x with x in years keeps the curvature's spread (its plain
    SD is 4,000 times larger), and a factor's coefficient beside its interaction with a year-valued
    covariate — its effect at year 0 — gets the tiny spread, so a wide prior, that it needs."""
    from .scaling import column_frame

    A = column_frame(np.asarray(X, dtype=float)).A
    norms = np.linalg.norm(A, axis=1)
    return np.where(norms > 0, 1.0 / norms, 0.0)


def _default_fixed(design: Design, family) -> list:
    """The default prior of each fixed-effect column, in ``design.fixed_names`` order."""
    s, m = _scale(design, family)
    spread = partial_sd(design.X)
    out = []
    for j, name in enumerate(design.fixed_names):
        if name == INTERCEPT:
            # at the other columns' means (bambi, rstanarm, brms): a prior on the raw intercept would be
            # a prior at x = 0, thousands of units from the data for a year-valued covariate
            out.append(CenteredIntercept(Normal(m, 5.0 * s)) if len(design.fixed_names) > 1 else Normal(m, 5.0 * s))
        else:
            sx = float(spread[j])
            out.append(Normal(0.0, 2.5 * s / (sx if sx > 0 else 1.0)))
    return out


def sd_scales(block) -> list:
    """Per term of a random block, the default SD prior's scale over 2.5 s: 1/sd(x_t) for a slope; 1 for
    an intercept, or in a correlated block √(1 + Σ_t (x̄_t / sd(x_t))²): its SD is the intercept's at
    x = 0, which the default priors of the intercept at the slopes' means (scale 1) and of the slopes
    (1/sd) put at that spread — for a random slope on a year, thousands of times the intercept's at
    the data (HalfNormal(2.5 s) there had the posterior of sleepstudy's slope SD with Days + 2000 at
    0.015 instead of 6.6)."""
    Xr = np.asarray(block.Xr, dtype=float)
    sds = [float(np.std(Xr[:, t])) for t in range(block.n_terms)]
    slopes = [t for t, term in enumerate(block.terms) if term != INTERCEPT and sds[t] > 0]
    out = []
    for t, term in enumerate(block.terms):
        if term == INTERCEPT:
            shift = sum((float(np.mean(Xr[:, u])) / sds[u]) ** 2 for u in slopes) if block.has_correlation else 0.0
            out.append(float(np.sqrt(1.0 + shift)))
        else:
            out.append(1.0 / (sds[t] if sds[t] > 0 else 1.0))
    return out


def _sd_key(term: str, group: str) -> str:
    return f"{'1' if term == INTERCEPT else term}|{group}"


def resolve_priors(design: Design, family, priors: dict | None = None) -> ResolvedPriors:
    """Combine the defaults with user overrides and check every prior.

    Parameters
    ----------
    design : Design
    family : Family
    priors : dict, optional
        Overrides, keyed as in the module docstring.

    Raises
    ------
    ImproperPriorError
        A flat or improper prior.
    KeyError
        A key that names no parameter of the model (the message lists the valid keys).
    TypeError
        A prior of the wrong kind for its parameter (e.g. Normal on an SD).
    """
    priors = dict(priors or {})
    defaults = default_priors(design, family)
    groups = set(design.groups)
    valid = {"fixed", "sd", "corr", "Intercept", *defaults}
    valid |= {f"sd|{g}" for g in groups} | {f"corr|{g}" for g in groups}
    for key in priors:
        if key not in valid and not (key == "sigma" and family.has_scale) and not (
                key == "dispersion" and family.has_dispersion):
            raise KeyError(
                f"priors key {key!r} names no parameter of this model; valid keys: "
                f"{', '.join(sorted(valid))}"
            )
    if "Intercept" in priors and "Intercept" not in design.fixed_names:  # a column named Intercept keeps its key
        priors.setdefault(INTERCEPT, priors.pop("Intercept"))
    if isinstance(priors.get(INTERCEPT), CenteredIntercept) and INTERCEPT not in design.fixed_names:
        raise KeyError(f"priors['(Intercept)'] = {priors[INTERCEPT]}: the model has no intercept")

    fixed = []
    for name, default in zip(design.fixed_names, _default_fixed(design, family)):
        if name in priors and name not in RESERVED_KEYS:
            fixed.append(_coerce(priors[name], name, "fixed"))
        elif name != INTERCEPT and "fixed" in priors:
            fixed.append(_coerce(priors["fixed"], "fixed", "fixed"))
        else:
            fixed.append(default)
        if isinstance(fixed[-1], CenteredIntercept) and name != INTERCEPT:
            key = name if name in priors else "fixed"
            raise TypeError(f"priors[{key!r}] = {fixed[-1]}: CenteredIntercept is for the intercept, "
                            "'(Intercept)', only")

    sds, corrs = [], []
    for block in design.random:
        row = []
        for term in block.terms:
            key = _sd_key(term, block.group)
            for k in (key, f"sd|{block.group}", "sd"):
                if k in priors:
                    row.append(_coerce(priors[k], k, "sd"))
                    break
            else:
                row.append(defaults[key])
        sds.append(tuple(row))
        if block.has_correlation:
            for k in (f"corr|{block.group}", "corr"):
                if k in priors:
                    corrs.append(_coerce(priors[k], k, "corr"))
                    break
            else:
                corrs.append(defaults[f"corr|{block.group}"])
        else:
            corrs.append(None)

    sigma = None
    if family.has_scale:
        sigma = _coerce(priors["sigma"], "sigma", "sigma") if "sigma" in priors else defaults["sigma"]
    dispersion = None
    if family.has_dispersion:
        dispersion = (_coerce(priors["dispersion"], "dispersion", "dispersion") if "dispersion" in priors
                      else defaults["dispersion"])
    labels = [(n, str(p)) for n, p in zip(design.fixed_names, fixed)]
    for block, row, corr in zip(design.random, sds, corrs):
        labels += [(f"sd {_sd_key(t, block.group)}", str(p)) for t, p in zip(block.terms, row)]
        if corr is not None:
            labels.append((f"corr|{block.group}", str(corr)))
    if sigma is not None:
        labels.append(("sigma", str(sigma)))
    if dispersion is not None:
        labels.append((f"dispersion (1/√{family.dispersion_name})", str(dispersion)))
    center = None
    if any(isinstance(p, CenteredIntercept) for p in fixed):
        means = np.asarray(design.X, dtype=float).mean(axis=0)
        center = tuple(0.0 if n == INTERCEPT else float(m) for n, m in zip(design.fixed_names, means))
    return ResolvedPriors(tuple(fixed), tuple(sds), tuple(corrs), sigma, tuple(labels), center, dispersion)
