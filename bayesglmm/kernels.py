"""The compiled (Numba) row functions of a GLM's log-likelihood, under one numbering of the
(family, link) pairs: the frequentist AGQ (:mod:`bayesglmm.frequentist.agq_kernels`) and the
in-graph AGQ kernels' probit and cloglog rows (:mod:`bayesglmm.bayes.quadrature`) compute a row here.

The codes are :attr:`bayesglmm.families.Family.kernel_code` (the families take them from here):
:data:`BINOMIAL_LOGIT`, :data:`BINOMIAL_PROBIT`, :data:`BINOMIAL_CLOGLOG` a probability (Bernoulli
or binomial), :data:`POISSON_LOG`, :data:`POISSON_IDENTITY` a Poisson mean, :data:`NO_KERNEL` a
pair without one (the Gaussian: its integrals are exact).

With κ(η) the row's log-likelihood kernel (the terms free of η dropped), n the trials (1 for a
Bernoulli or Poisson row), μ = g⁻¹(η), μ′ = dμ/dη and V the variance function:

* :func:`row_terms` — κ and the score κ′ = (y − nμ) μ′/V, formula for formula as
  :meth:`~bayesglmm.families.Family.loglik_kernel` and :meth:`~bayesglmm.families.Family.score`
  (μ clipped to [ε, 1 − ε] for a probability, ``xlogy`` at y = 0): the frequentist AGQ's row,
  tested against that NumPy path.

It is ``inline="always"``: Numba splices it into its callers, whose flags (``error_model``,
``fastmath``) then apply. Numba's on-disk cache checks a cached function's own source file only,
not the files of the functions it inlines: after an edit here, clear the ``__pycache__`` entries of
the callers' modules (PyTensor's cache key of the Ops includes this file:
:func:`~bayesglmm.bayes.agq_op.source_salt`).

This module imports nothing from the package, so that :mod:`bayesglmm.families`, the frequentist
and the Bayesian engines can all import it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["NO_KERNEL", "BINOMIAL_LOGIT", "BINOMIAL_PROBIT", "BINOMIAL_CLOGLOG", "POISSON_LOG", "POISSON_IDENTITY",
           "EPS", "row_terms"]

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

#: a probability is clipped to [EPS, 1 − EPS] where its logarithms and variance are taken
EPS = float(np.finfo(float).eps)
_SQRT2 = math.sqrt(2.0)


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
