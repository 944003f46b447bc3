"""The compiled (Numba) row functions of a GLM's log-likelihood, under one numbering of the
(family, link) pairs: the frequentist AGQ (:mod:`bayesglmm.frequentist.agq_kernels`), the in-graph
AGQ kernels NUTS samples with ``marginalize=True`` (:mod:`bayesglmm.bayes.quadrature`, and the draws
of :mod:`bayesglmm.bayes.draws`) and the fused likelihood Op (:mod:`bayesglmm.bayes.loglik_op`) all
compute a row here.

The codes are :attr:`bayesglmm.families.Family.kernel_code` (the families take them from here):
:data:`BINOMIAL_LOGIT`, :data:`BINOMIAL_PROBIT`, :data:`BINOMIAL_CLOGLOG` a probability (Bernoulli
or binomial), :data:`POISSON_LOG`, :data:`POISSON_IDENTITY` a Poisson mean, :data:`NO_KERNEL` a
pair without one (the Gaussian: its integrals are exact). The dispersion families' codes
(:data:`DISPERSION_CODES`: :data:`NEGBIN_LOG`, :data:`BETABINOMIAL_LOGIT`, :data:`BETABINOMIAL_PROBIT`,
:data:`BETABINOMIAL_CLOGLOG`, :data:`GAMMA_LOG`, :data:`GAMMA_INVERSE`) take their dispersion φ
as an argument: :func:`dispersion_row` (κ with every φ term, κ′, the family's Fisher weight,
∂κ/∂φ), split into :func:`dispersion_terms` and the η-free :func:`dispersion_constant`. Each
engine takes the codes it has a path for: the frequentist AGQ the first five (its node loop,
:func:`row_terms`, has no φ: a dispersion family takes its NumPy path), the in-graph AGQ
:data:`bayesglmm.bayes.quadrature.AGQ_CODES` (the probability and log-Poisson codes, and the
dispersion codes but the Gamma's inverse link: :func:`bayesglmm.bayes.agq_op.agq_kind`), the fused
Op the canonical two (:data:`bayesglmm.bayes.loglik_op.FUSED_CODES`).

With κ(η) the row's log-likelihood kernel (the terms free of η dropped), n the trials (1 for a
Bernoulli or Poisson row), μ = g⁻¹(η), μ′ = dμ/dη and V the variance function:

* :func:`row_terms` — κ and the score κ′ = (y − nμ) μ′/V, formula for formula as
  :meth:`~bayesglmm.families.Family.loglik_kernel` and :meth:`~bayesglmm.families.Family.score`
  (μ clipped to [ε, 1 − ε] for a probability, ``xlogy`` at y = 0): the frequentist AGQ's row,
  tested against that NumPy path;
* :func:`row_kernel` — κ, κ′ and the Fisher weight n μ′²/V (−κ″ for the canonical links): the
  in-graph AGQ's row. Its canonical links are the exact closed forms (κ = yη − n log(1 + e^η),
  yη − e^η: no clipping, y·η rather than y·log e^η), the forms the factorised fast paths of those
  kernels sum too, so that a group's fast and direct paths agree to rounding; its probit and
  cloglog rows are :func:`row_terms`' plus the weight. The two logit and Poisson forms differ in
  the last bits (and, clipped, beyond |η| ≈ 36): each is kept where its callers are tested
  against it;
* :func:`score_weight` — κ′ and the weight alone (one exponential for the canonical links): the
  Newton steps to a group's mode;
* :func:`fused_row` — a canonical-link row from its one exponential, computed beforehand for all
  rows in one SIMD pass by the fused Op's loop (:func:`bayesglmm.bayes.loglik_op.glm_loglik_kernel`).
  The same κ and κ′ as :func:`row_kernel`'s logit and log branches (to rounding: its exponential
  is within two units in the last place of ``np.exp``), split for speed: a loop calling
  ``np.exp`` a row runs one libm call at a time, the pass of
  :func:`~bayesglmm.bayes.vexp.exp_into` vectorizes (ohio's kernel 12.1 → 7.0 µs), and the
  Bernoulli rows' n log(1 + t) is left to the caller, which takes it as the logarithm of a running
  product (one logarithm per 512 rows).

All are ``inline="always"``: Numba splices them into their callers, whose flags (``error_model``,
``fastmath``) then apply; the flags here are those the callers had when these functions were
theirs. Numba's on-disk cache checks a cached function's own source file only, not the files of
the functions it inlines: after an edit here, clear the ``__pycache__`` entries of the callers'
modules (PyTensor's cache key of the Ops includes this file:
:func:`~bayesglmm.bayes.agq_op.source_salt`).

This module imports nothing from the package, so that :mod:`bayesglmm.families`, the frequentist
and the Bayesian engines can all import it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["NO_KERNEL", "BINOMIAL_LOGIT", "BINOMIAL_PROBIT", "BINOMIAL_CLOGLOG", "POISSON_LOG", "POISSON_IDENTITY",
           "NEGBIN_LOG", "BETABINOMIAL_LOGIT", "BETABINOMIAL_PROBIT", "BETABINOMIAL_CLOGLOG", "GAMMA_LOG",
           "GAMMA_INVERSE", "DISPERSION_CODES", "EPS", "row_terms", "row_kernel", "score_weight", "fused_row",
           "dispersion_row", "dispersion_terms", "dispersion_constant", "dispersion_score_weight", "lgamma_ratio", "digamma", "digamma_diff"]

#: a (family, link) pair without compiled kernels (the Gaussian)
NO_KERNEL = -1
#: a probability (Bernoulli or binomial) by the logit link (canonical)
BINOMIAL_LOGIT = 0
#: a probability by the probit link
BINOMIAL_PROBIT = 1
#: a probability by the complementary log-log link
BINOMIAL_CLOGLOG = 2
#: a Poisson mean by the log link (canonical)
POISSON_LOG = 3
#: a Poisson mean by the identity link
POISSON_IDENTITY = 4
#: a negative binomial (NB2) mean by the log link; the dispersion φ is the size θ
NEGBIN_LOG = 5
#: a beta-binomial probability by the logit, probit, cloglog links; φ is θ = α + β
BETABINOMIAL_LOGIT = 6
BETABINOMIAL_PROBIT = 7
BETABINOMIAL_CLOGLOG = 8
#: a Gamma mean by the log and the inverse link; φ is the shape k
GAMMA_LOG = 9
GAMMA_INVERSE = 10
#: the codes whose rows take a dispersion φ (:func:`dispersion_row`); the others ignore it
DISPERSION_CODES = (NEGBIN_LOG, BETABINOMIAL_LOGIT, BETABINOMIAL_PROBIT, BETABINOMIAL_CLOGLOG, GAMMA_LOG,
                    GAMMA_INVERSE)

#: a probability is clipped to [EPS, 1 − EPS] where its logarithms and variance are taken
EPS = float(np.finfo(float).eps)
_SQRT2 = math.sqrt(2.0)
_SQRT_2PI = float(np.sqrt(2.0 * np.pi))


@numba.njit(cache=True, inline="always")
def _xlogy(y, p):
    return 0.0 if y == 0.0 else y * math.log(p)


@numba.njit(cache=True, inline="always")
def row_terms(code, y, n, eta):
    """κ(η) and the score κ′(η) of one row, as the families' NumPy formulas compute them.

    Parameters
    ----------
    code : int
        The (family, link) pair: any code but :data:`NO_KERNEL`.
    y, n : float
        Response (successes) and trials (1 for a Bernoulli or Poisson row).
    eta : float
        The linear predictor η.

    Returns
    -------
    ll : float
        κ(η): for a probability p = clip(μ, ε, 1 − ε), y log p + (n − y) log(1 − p) (a term is 0
        when its count is); for a Poisson mean, y log μ − μ.
    score : float
        ∂κ/∂η = (y − nμ) μ′/V: for a probability V = max(p(1 − p), 1e-300) with μ′ = μ(1 − μ)
        (logit), φ(η) (probit), exp(η − e^η) (cloglog); for a Poisson mean V = max(μ, 1e-300)
        with μ′ = μ (log) or 1 (identity).
    """
    if code <= BINOMIAL_CLOGLOG:  # a probability: logit, probit, cloglog
        if code == BINOMIAL_LOGIT:
            if eta >= 0.0:
                e = math.exp(-eta)
                mu = 1.0 / (1.0 + e)
            else:
                e = math.exp(eta)
                mu = e / (1.0 + e)
            d1 = mu * (1.0 - mu)
        elif code == BINOMIAL_PROBIT:
            mu = 0.5 * math.erfc(-eta / _SQRT2)
            d1 = math.exp(-0.5 * eta * eta) / math.sqrt(2.0 * math.pi)
        else:
            ee = math.exp(eta)
            mu = -math.expm1(-ee)
            d1 = math.exp(eta - ee)
        p = min(max(mu, EPS), 1.0 - EPS)
        ll = _xlogy(y, p) + (0.0 if n - y == 0.0 else (n - y) * math.log1p(-p))
        var = max(p * (1.0 - p), 1e-300)
        return ll, (y - n * mu) * d1 / var
    if code == POISSON_LOG:
        mu = math.exp(eta)
        return _xlogy(y, mu) - mu, (y - mu) * mu / max(mu, 1e-300)
    mu = eta  # POISSON_IDENTITY
    return _xlogy(y, mu) - mu, (y - mu) / max(mu, 1e-300)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _link_row(eta, y, n, code):
    """κ, κ′ and the Fisher weight n μ′²/(p(1 − p)) of a probit or cloglog row: κ and κ′ by
    :func:`row_terms` (μ clipped to [ε, 1 − ε]), the weight from μ′ = φ(η) or exp(η − e^η)."""
    ll, score = row_terms(code, y, n, eta)
    if code == BINOMIAL_PROBIT:
        mu = 0.5 * math.erfc(-eta / np.sqrt(2.0))
        d1 = np.exp(-0.5 * eta * eta) / _SQRT_2PI
    else:
        ee = np.exp(eta)
        mu = -math.expm1(-ee)
        d1 = np.exp(eta - ee)
    p = min(max(mu, EPS), 1.0 - EPS)
    return ll, score, n * d1 * d1 / max(p * (1.0 - p), 1e-300)


@numba.njit(cache=True, error_model="numpy", inline="always")
def row_kernel(eta, y, n, code, phi):
    """κ(η), κ′(η) and the Fisher weight of one row, as the in-graph AGQ kernels compute them.

    Parameters
    ----------
    eta, y, n : float
        The linear predictor, the response (successes) and the trials.
    code : int
        :data:`BINOMIAL_LOGIT`, :data:`BINOMIAL_PROBIT`, :data:`BINOMIAL_CLOGLOG`,
        :data:`POISSON_LOG`, or one of :data:`DISPERSION_CODES` (:func:`dispersion_row`).
    phi : float
        The dispersion (θ, the shape) of a code of :data:`DISPERSION_CODES`; ignored by the others.

    Returns
    -------
    kappa, score, weight : float
        Logit: with t = e^(−|η|), κ = yη − n softplus(η), softplus(η) = max(η, 0) + log(1 + t),
        κ′ = y − np with p = 1/(1 + t) (η ≥ 0) or t/(1 + t), weight np(1 − p) = −κ″. Log:
        κ = yη − e^η, κ′ = y − e^η, weight e^η = −κ″. Probit and cloglog: κ and κ′ by
        :func:`row_terms`, the Fisher weight n μ′²/(p(1 − p)) (p = μ clipped to [ε, 1 − ε]).
    """
    if code >= NEGBIN_LOG:
        kap, score, w, _ = dispersion_row(eta, y, n, code, phi)
        return kap, score, w
    if code == BINOMIAL_LOGIT:
        t = np.exp(-abs(eta))
        softplus = max(eta, 0.0) + np.log1p(t)
        p = 1.0 / (1.0 + t) if eta >= 0.0 else t / (1.0 + t)
        return y * eta - n * softplus, y - n * p, n * p * (1.0 - p)
    if code != POISSON_LOG:
        return _link_row(eta, y, n, code)
    mu = np.exp(eta)
    return y * eta - mu, y - mu, mu


@numba.njit(cache=True, error_model="numpy", inline="always")
def score_weight(eta, y, n, code, phi):
    """κ′(η) and the Fisher weight of one row (:func:`row_kernel`'s last two; one exponential for
    the canonical links: logit y − np and np(1 − p), log y − e^η and e^η)."""
    if code >= NEGBIN_LOG:
        return dispersion_score_weight(eta, y, n, code, phi)
    if code == BINOMIAL_LOGIT:
        t = np.exp(-abs(eta))
        p = 1.0 / (1.0 + t) if eta >= 0.0 else t / (1.0 + t)
        return y - n * p, n * p * (1.0 - p)
    if code != POISSON_LOG:
        _, score, w = _link_row(eta, y, n, code)
        return score, w
    mu = np.exp(eta)
    return y - mu, mu


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"}, inline="always")
def fused_row(code, eta, t, y, n):
    """A canonical-link row of the fused Op from its one exponential ``t``.

    Parameters
    ----------
    code : int
        :data:`BINOMIAL_LOGIT` (``t`` = e^(−|η|)) or :data:`POISSON_LOG` (``t`` = e^η).
    eta, t, y, n : float

    Returns
    -------
    part : float
        κ(η) but for the logit's −n log(1 + t), which the caller sums as the logarithm of a running
        product for Bernoulli rows: logit yη − n max(η, 0) (κ = yη − n softplus(η) and softplus(η) =
        max(η, 0) + log(1 + e^(−|η|))), log yη − e^η.
    score : float
        κ′(η): logit y − np, p = 1/(1 + t) (η ≥ 0) or t/(1 + t); log y − e^η.
    """
    if code == BINOMIAL_LOGIT:
        inv = 1.0 / (1.0 + t)
        p = inv if eta >= 0.0 else t * inv
        return y * eta - n * max(eta, 0.0), y - n * p
    return y * eta - t, y - t


# ------------------------------------------------------------------ the dispersion families' rows
@numba.njit(cache=True, error_model="numpy", inline="always")
def digamma(x):
    """ψ(x) for x > 0: the recurrence ψ(x) = ψ(x + 1) − 1/x up to x ≥ 10, then the asymptotic
    series to x⁻¹⁴ (its first omitted term below 10⁻¹⁶ there)."""
    acc = 0.0
    while x < 10.0:
        acc -= 1.0 / x
        x += 1.0
    r = 1.0 / (x * x)
    series = r * (1.0 / 12.0 - r * (1.0 / 120.0 - r * (1.0 / 252.0 - r * (1.0 / 240.0 - r * (1.0 / 132.0
                                                                                     - r * (691.0 / 32760.0 - r / 12.0))))))
    return acc + math.log(x) - 0.5 / x - series


@numba.njit(cache=True, error_model="numpy", inline="always")
def digamma_diff(x, m):
    """ψ(x + m) − ψ(x) for x > 0 and a count m ≥ 0: Σ_{k<m} 1/(x + k) (exact, no cancellation) for
    m ≤ 64, else the difference of :func:`digamma`."""
    if m <= 64.0:
        acc = 0.0
        k = 0.0
        while k < m:
            acc += 1.0 / (x + k)
            k += 1.0
        return acc
    return digamma(x + m) - digamma(x)


@numba.njit(cache=True, error_model="numpy", inline="always")
def lgamma_ratio(y, theta):
    """log Γ(y + θ) − log Γ(θ) − y log θ, formula for formula as the families' ``_lgamma_ratio``:
    the difference of log-gammas for θ ≤ 100, Stirling's series beyond."""
    if theta > 100.0:
        z = theta + y
        return ((z - 0.5) * math.log1p(y / theta) - y + (1.0 / (12.0 * z) - 1.0 / (12.0 * theta))
                - (1.0 / (360.0 * z ** 3) - 1.0 / (360.0 * theta ** 3))
                + (1.0 / (1260.0 * z ** 5) - 1.0 / (1260.0 * theta ** 5)))
    return math.lgamma(y + theta) - math.lgamma(theta) - (0.0 if y == 0.0 else y * math.log(theta))


@numba.njit(cache=True, error_model="numpy", inline="always")
def _probability(code, eta):
    """μ and μ′ of a probability by the logit, probit or cloglog link of a beta-binomial code."""
    if code == BETABINOMIAL_LOGIT:
        if eta >= 0.0:
            mu = 1.0 / (1.0 + math.exp(-eta))
        else:
            e = math.exp(eta)
            mu = e / (1.0 + e)
        return mu, mu * (1.0 - mu)
    if code == BETABINOMIAL_PROBIT:
        return 0.5 * math.erfc(-eta / _SQRT2), math.exp(-0.5 * eta * eta) / _SQRT_2PI
    ee = math.exp(eta)
    return -math.expm1(-ee), math.exp(eta - ee)


@numba.njit(cache=True, error_model="numpy", inline="always")
def dispersion_terms(eta, y, n, code, phi):
    """The η-dependent part of :func:`dispersion_row`: (κ − c, κ′, weight, ∂(κ − c)/∂φ) with c the
    row's η-free terms (:func:`dispersion_constant`), which a quadrature adds once a row rather
    than once a node (the log-gamma ratios and ψ sums of a count are the costly part of a row).
    See :func:`dispersion_row` for the formulas."""
    if code == NEGBIN_LOG:
        theta = phi
        mu = np.exp(eta)
        q = theta + mu
        l1p = np.log1p(mu / theta)
        ll = (0.0 if y == 0.0 else y * eta) - (y + theta) * l1p
        return ll, (y - mu) * theta / q, mu * theta / q, (mu - y) / q - l1p
    if code <= BETABINOMIAL_CLOGLOG:
        theta = phi
        mu, d1 = _probability(code, eta)
        p = min(max(mu, EPS), 1.0 - EPS)
        a, b = p * theta, (1.0 - p) * theta
        ll = (lgamma_ratio(y, a) + lgamma_ratio(n - y, b)
              + (0.0 if y == 0.0 else y * math.log(p)) + (0.0 if n - y == 0.0 else (n - y) * math.log1p(-p)))
        da, db = digamma_diff(a, y), digamma_diff(b, n - y)
        var = max(p * (1.0 - p), 1e-300)
        weight = n * d1 * d1 / var / (1.0 + (n - 1.0) / (1.0 + theta))
        return ll, theta * (da - db) * d1, weight, p * da + (1.0 - p) * db
    k = phi
    if code == GAMMA_LOG:
        r = y / np.exp(eta)
        lr = math.log(r)
        return k * (lr - r), k * (r - 1.0), k, lr - r
    if eta <= 0.0:  # GAMMA_INVERSE outside its range
        return -np.inf, 0.0, k / max(eta * eta, 1e-300), 0.0
    r = y * eta
    lr = math.log(r)
    return k * (lr - r), k * (1.0 / eta - y), k / (eta * eta), lr - r


@numba.njit(cache=True, error_model="numpy", inline="always")
def dispersion_constant(y, n, code, phi):
    """The η-free terms c of a dispersion row's κ and ∂c/∂φ: NB lgr(y, θ) and ψ(y + θ) − ψ(θ);
    beta-binomial −lgr(n, θ) and −[ψ(n + θ) − ψ(θ)]; Gamma k log k − log Γ(k) and
    log k + 1 − ψ(k)."""
    if code == NEGBIN_LOG:
        return lgamma_ratio(y, phi), digamma_diff(phi, y)
    if code <= BETABINOMIAL_CLOGLOG:
        return -lgamma_ratio(n, phi), -digamma_diff(phi, n)
    return phi * math.log(phi) - math.lgamma(phi), math.log(phi) + 1.0 - digamma(phi)


@numba.njit(cache=True, error_model="numpy", inline="always")
def dispersion_score_weight(eta, y, n, code, phi):
    """κ′ and the weight of a dispersion row alone (the Newton steps to a group's mode)."""
    if code == NEGBIN_LOG:
        mu = np.exp(eta)
        q = phi + mu
        return (y - mu) * phi / q, mu * phi / q
    if code == GAMMA_LOG:
        r = y / np.exp(eta)
        return phi * (r - 1.0), phi
    if code == GAMMA_INVERSE:
        if eta <= 0.0:
            return 0.0, phi / max(eta * eta, 1e-300)
        return phi * (1.0 / eta - y), phi / (eta * eta)
    _, score, w, _ = dispersion_terms(eta, y, n, code, phi)
    return score, w


@numba.njit(cache=True, error_model="numpy", inline="always")
def dispersion_row(eta, y, n, code, phi):
    """κ(η; φ), κ′(η), the Fisher weight and ∂κ/∂φ of one row of a dispersion family.

    κ has every term that depends on φ (it is a parameter), formula for formula as the family's
    :meth:`~bayesglmm.families.Family.loglik_kernel`; the weight is the family's
    :attr:`~bayesglmm.families.Working.weight` (what the frequentist AGQ scales its nodes by), > 0:

    * :data:`NEGBIN_LOG` (θ = φ, μ = e^η): κ = lgr(y, θ) + yη − (y + θ) log1p(μ/θ) (lgr
      :func:`lgamma_ratio`), κ′ = (y − μ)θ/(θ + μ), weight μθ/(θ + μ), ∂κ/∂θ = ψ(y + θ) − ψ(θ) −
      log1p(μ/θ) + (μ − y)/(θ + μ);
    * beta-binomial (θ = φ, p = clip(μ, ε, 1 − ε), a = pθ, b = (1 − p)θ): κ = lgr(y, a) +
      lgr(n − y, b) − lgr(n, θ) + y log p + (n − y) log(1 − p), κ′ = θ[ψ(y + a) − ψ(a) −
      ψ(n − y + b) + ψ(b)] μ′, weight n μ′²/(p(1 − p)) / (1 + (n − 1)/(1 + θ)) (the family's
      quasi-likelihood weight), ∂κ/∂θ = p[ψ(y + a) − ψ(a)] + (1 − p)[ψ(n − y + b) − ψ(b)] −
      [ψ(n + θ) − ψ(θ)];
    * :data:`GAMMA_LOG` (shape k = φ, r = y/e^η): κ = k log(kr) − kr − log Γ(k), κ′ = k(r − 1),
      weight k, ∂κ/∂k = log(kr) + 1 − r − ψ(k); :data:`GAMMA_INVERSE` (μ = 1/η, r = yη): the same
      κ and ∂κ/∂k, κ′ = k(1/η − y), weight k/η²; η ≤ 0 (outside the inverse link's range) gives
      κ = −∞, κ′ = 0, weight k/η² (large), ∂κ/∂k = 0: such a node has no weight.
    """
    ll, score, weight, dphi = dispersion_terms(eta, y, n, code, phi)
    c, dc = dispersion_constant(y, n, code, phi)
    return ll + c, score, weight, dphi + dc
