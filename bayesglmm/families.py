"""Families and links in plain NumPy, shared by every engine.

A :class:`Family` is asked, never subclassed by the engines: ``loglik_obs``,
``variance``, ``validate``, ``irls_weights``, ``working`` (the score, Fisher and observed
weights and the weights' derivative in η, for any link). A :class:`Link` knows ``link``,
``inverse``, ``inverse_deriv`` (dμ/dη) and ``inverse_deriv2`` (d²μ/dη²). The PyMC backend translates these
through one small table in :mod:`bayesglmm.bayes.model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import special

__all__ = ["Link", "Family", "Working", "LINKS", "FAMILIES", "get_family", "get_link"]

_EPS = np.finfo(float).eps


def _logit_deriv(eta):
    p = special.expit(eta)
    return p * (1.0 - p)


def _logit_deriv2(eta):
    p = special.expit(eta)
    return p * (1.0 - p) * (1.0 - 2.0 * p)


def _probit_deriv(eta):
    return np.exp(-0.5 * eta**2) / np.sqrt(2.0 * np.pi)


# name: (g, g⁻¹, dμ/dη, d²μ/dη²)
_LINK_FUNCTIONS = {
    "logit": (special.logit, special.expit, _logit_deriv, _logit_deriv2),
    "probit": (special.ndtri, special.ndtr, _probit_deriv, lambda eta: -eta * _probit_deriv(eta)),
    "cloglog": (lambda mu: np.log(-np.log1p(-mu)), lambda eta: -np.expm1(-np.exp(eta)),
                lambda eta: np.exp(eta - np.exp(eta)), lambda eta: np.exp(eta - np.exp(eta)) * -np.expm1(eta)),
    "log": (np.log, np.exp, np.exp, np.exp),
    "identity": (lambda mu: mu, lambda eta: eta, np.ones_like, np.zeros_like),
}

#: the canonical link of each family (observed and Fisher information coincide under it)
_CANONICAL = {"bernoulli": "logit", "binomial": "logit", "poisson": "log", "gaussian": "identity"}


class Working(NamedTuple):
    """What the likelihood engines need of each observation at η (see :meth:`Family.working`)."""

    mu: np.ndarray           #: μ = g⁻¹(η) (a probability for Bernoulli/binomial)
    mean: np.ndarray         #: E y (n μ for the binomial)
    score: np.ndarray        #: ∂ℓ/∂η
    weight: np.ndarray       #: Fisher weight E[−∂²ℓ/∂η²] = n μ′² / V(μ)
    dweight: np.ndarray      #: ∂weight/∂η
    obs_weight: np.ndarray   #: observed weight −∂²ℓ/∂η² (= weight for a canonical link)


@dataclass(frozen=True)
class Link:
    """A link function g with μ = g⁻¹(η).

    Attributes
    ----------
    name : str
        ``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"`` or ``"identity"``.
    """

    name: str

    def link(self, mu):
        """η = g(μ)."""
        return _LINK_FUNCTIONS[self.name][0](np.asarray(mu, dtype=float))

    def inverse(self, eta):
        """μ = g⁻¹(η)."""
        return _LINK_FUNCTIONS[self.name][1](np.asarray(eta, dtype=float))

    def inverse_deriv(self, eta):
        """dμ/dη at η."""
        return _LINK_FUNCTIONS[self.name][2](np.asarray(eta, dtype=float))

    def inverse_deriv2(self, eta):
        """d²μ/dη² at η."""
        return _LINK_FUNCTIONS[self.name][3](np.asarray(eta, dtype=float))


LINKS = tuple(_LINK_FUNCTIONS)


@dataclass(frozen=True)
class Family:
    """A response distribution with its link.

    Attributes
    ----------
    name : str
        ``"bernoulli"``, ``"binomial"``, ``"poisson"`` or ``"gaussian"``.
    link : Link
    """

    name: str
    link: Link

    @property
    def has_scale(self) -> bool:
        """True if the family has a free dispersion (the Gaussian residual SD)."""
        return self.name == "gaussian"

    @property
    def needs_trials(self) -> bool:
        return self.name == "binomial"

    @property
    def counts_successes(self) -> bool:
        """True for Bernoulli and binomial responses (successes out of trials, μ a probability):
        the families where a 0/1 predictor can separate the outcomes."""
        return self.name in ("bernoulli", "binomial")

    @property
    def response_kind(self) -> str:
        """What the response is: ``"binary"`` (Bernoulli), ``"count"`` (binomial successes, Poisson
        counts: held as integers) or ``"continuous"`` (Gaussian). The Bayesian graph, the stored
        data and the posterior predictive check ask this, not the family's name."""
        return {"bernoulli": "binary", "binomial": "count", "poisson": "count"}.get(self.name, "continuous")

    @property
    def kernel_code(self) -> int:
        """The (family, link) pair as the integer the compiled node loops switch on
        (:mod:`bayesglmm.frequentist.agq_kernels`): 0, 1, 2 a probability by logit, probit,
        cloglog; 3, 4 a Poisson mean by log, identity; −1 none (Gaussian: no AGQ)."""
        if self.counts_successes:
            return ("logit", "probit", "cloglog").index(self.link.name)
        if self.has_scale:
            return -1
        return 3 + ("log", "identity").index(self.link.name)

    def initial_mu(self, y, trials=None):
        """A starting mean for IRLS, inside the support: (y + ½)/(n + 1) for a probability,
        y + 0.1 for a Poisson mean, y itself for a Gaussian one."""
        y = np.asarray(y, dtype=float)
        if self.counts_successes:
            n = 1.0 if trials is None else np.asarray(trials, dtype=float)
            return np.clip((y + 0.5) / (n + 1.0), 1e-3, 1 - 1e-3)
        return y + 0.1 if self.name == "poisson" else y

    def variance(self, mu):
        """The variance function V(μ) (per trial for the binomial)."""
        mu = np.asarray(mu, dtype=float)
        if self.name in ("bernoulli", "binomial"):
            return mu * (1.0 - mu)
        if self.name == "poisson":
            return mu
        return np.ones_like(mu)

    def variance_deriv(self, mu):
        """dV/dμ."""
        mu = np.asarray(mu, dtype=float)
        if self.name in ("bernoulli", "binomial"):
            return 1.0 - 2.0 * mu
        return np.ones_like(mu) if self.name == "poisson" else np.zeros_like(mu)

    @property
    def canonical(self) -> bool:
        """True if the link is the family's canonical link (logit, log, identity)."""
        return _CANONICAL[self.name] == self.link.name

    def working(self, eta, y, trials=None) -> Working:
        """Score, Fisher and observed weights and the Fisher weight's η-derivative at ``eta``
        (unit dispersion): what PIRLS, the analytic Laplace/AGQ gradients and the implicit
        derivative of the conditional modes ask, for any link.

        With μ′, μ″ the link's derivatives, V the variance function and n the trials:
        score = (y − nμ) μ′/V, weight W = n μ′²/V, dW/dη = n(2μ′μ″/V − μ′³V′/V²) and the
        observed weight W − (y − nμ)(μ″/V − μ′²V′/V²). μ is clipped as in :meth:`clip_mu`
        for the variance, so that the weights stay finite under separation.
        """
        eta = np.asarray(eta, dtype=float)
        n = 1.0 if trials is None else np.asarray(trials, dtype=float)
        mu = self.link.inverse(eta)
        d1, d2 = self.link.inverse_deriv(eta), self.link.inverse_deriv2(eta)
        mc = self.clip_mu(mu)
        var = np.maximum(self.variance(mc), 1e-300)
        dvar = self.variance_deriv(mc)
        mean = n * mu
        resid = np.asarray(y, dtype=float) - mean
        weight = n * d1**2 / var
        if self.canonical:  # μ″/V = μ′²V′/V²: the observed weight is the Fisher one
            return Working(mu, mean, resid * d1 / var, weight, n * d1 * d2 / var, weight)
        curv = d2 / var - d1**2 * dvar / var**2
        return Working(mu, mean, resid * d1 / var, weight, n * (2.0 * d1 * d2 / var - d1**3 * dvar / var**2),
                       weight - resid * curv)

    def score(self, eta, y, trials=None) -> np.ndarray:
        """∂ℓ/∂η = (y − nμ) μ′/V at ``eta`` (unit dispersion): :attr:`Working.score` alone, for
        the engines that need no weights (AGQ's gradient at every node)."""
        eta = np.asarray(eta, dtype=float)
        n = 1.0 if trials is None else np.asarray(trials, dtype=float)
        mu = self.link.inverse(eta)
        var = np.maximum(self.variance(self.clip_mu(mu)), 1e-300)
        return (np.asarray(y, dtype=float) - n * mu) * self.link.inverse_deriv(eta) / var

    def clip_mu(self, mu):
        """μ kept inside the open support of the mean where the variance function vanishes at the
        edge (a probability within [ε, 1 − ε]), so that working weights stay finite when a
        separated term drives μ to 0 or 1; other families' μ is returned unchanged."""
        mu = np.asarray(mu, dtype=float)
        if self.name in ("bernoulli", "binomial"):
            return np.clip(mu, _EPS, 1.0 - _EPS)
        return mu

    def sample(self, mu, trials=None, sigma=None, rng=None):
        """Draw responses with mean ``mu`` (successes out of ``trials`` for the binomial).

        Parameters
        ----------
        mu : array, shape (n,)
            Means (success probabilities for Bernoulli/binomial).
        trials : array, shape (n,), optional
        sigma : float, optional
            Residual SD (Gaussian).
        rng : numpy.random.Generator
        """
        rng = np.random.default_rng() if rng is None else rng
        mu = np.asarray(mu, dtype=float)
        if self.name in ("bernoulli", "binomial"):
            n = np.ones_like(mu) if trials is None else np.asarray(trials)
            return rng.binomial(n.astype(np.int64), np.clip(mu, 0.0, 1.0)).astype(float)
        if self.name == "poisson":
            if np.any(mu < 0):
                raise ValueError("cannot draw Poisson counts with a negative mean (identity link)")
            return rng.poisson(mu).astype(float)
        if sigma is None:
            raise ValueError("drawing Gaussian responses needs sigma")
        return rng.normal(mu, sigma)

    def loglik_obs(self, y, mu, trials=None, sigma=None):
        """Log-likelihood of each observation, with every normalising constant:
        :meth:`loglik_kernel` + :meth:`loglik_constant`.

        Parameters
        ----------
        y : array, shape (n,)
            Responses (successes for the binomial).
        mu : array, shape (n,)
            Means (success probabilities for Bernoulli/binomial).
        trials : array, shape (n,), optional
            Binomial trials.
        sigma : float, optional
            Residual SD (Gaussian only).
        """
        return self.loglik_kernel(y, mu, trials, sigma) + self.loglik_constant(y, trials)

    def loglik_kernel(self, y, mu, trials=None, sigma=None):
        """The part of :meth:`loglik_obs` that depends on μ (and σ): what optimisers evaluate
        again and again, with the constant computed once."""
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        if self.name in ("bernoulli", "binomial"):
            n = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
            p = np.clip(mu, _EPS, 1.0 - _EPS)
            return special.xlogy(y, p) + special.xlog1py(n - y, -p)
        if self.name == "poisson":
            return special.xlogy(y, mu) - mu
        if sigma is None:
            raise ValueError("the gaussian log-likelihood needs sigma")
        return -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * ((y - mu) / sigma) ** 2

    def saturated_mean(self, y, trials=None):
        """The mean of the saturated fit, μ̂ = y (for a probability, per trial: y / n)."""
        y = np.asarray(y, dtype=float)
        if self.counts_successes:
            return y / (np.ones_like(y) if trials is None else np.asarray(trials, dtype=float))
        return y

    def loglik_relative(self, y, mu, trials=None):
        """ℓ(y; μ) − ℓ(y; μ̂) per observation, μ̂ the saturated mean: minus half the unit deviance,
        for the counting families (Bernoulli, binomial, Poisson).

        It is of order 1 where μ is near y, so a sum of them is accurate to about ε·n, where a sum
        of :meth:`loglik_kernel` (of order y log μ) is accurate only to ε·Σ|ℓᵢ|: with Poisson counts
        near 10⁷ that was 10⁻⁵ of log-likelihood, enough to stop an optimiser short. Written as
        y log(μ/y) − (μ − y) (Poisson) and y log(p/p̂) + (n − y) log((1 − p)/(1 − p̂)) (binomial),
        each a product of a count and the log of a ratio near 1.
        """
        if self.counts_successes and trials is None:  # 0/1 outcomes: the saturated fit's ℓ is 0, the kernel is
            return self.loglik_kernel(y, mu)           # already relative to it (and a third cheaper)
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        pos = y > 0
        if self.counts_successes:
            n = np.asarray(trials, dtype=float)
            p = np.clip(mu, _EPS, 1.0 - _EPS)
            phat = y / n
            rest = n - y > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                a = np.where(pos, y * np.log(p / np.where(pos, phat, 1.0)), 0.0)
                b = np.where(rest, (n - y) * np.log((1.0 - p) / np.where(rest, 1.0 - phat, 1.0)), 0.0)
            return a + b
        if self.has_scale:
            raise ValueError("loglik_relative is for the counting families; a Gaussian model is an LMM")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(pos, y * np.log(mu / np.where(pos, y, 1.0)), 0.0) - (mu - y)

    def loglik_saturated(self, y, trials=None):
        """ℓ(y; μ̂) per observation, every constant included: with :meth:`loglik_relative`,
        ``loglik_obs(y, μ) = loglik_relative(y, μ) + loglik_saturated(y)``."""
        mu_hat = self.saturated_mean(y, trials)
        return self.loglik_kernel(y, mu_hat, trials) + self.loglik_constant(y, trials)

    def loglik_constant(self, y, trials=None):
        """The part of :meth:`loglik_obs` free of the parameters: log C(n, y) for the binomial,
        −log y! for the Poisson, 0 for the Gaussian (its normalising term involves σ)."""
        y = np.asarray(y, dtype=float)
        if self.name in ("bernoulli", "binomial"):
            if trials is None:
                return np.zeros_like(y)
            n = np.asarray(trials, dtype=float)
            return special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
        if self.name == "poisson":
            return -special.gammaln(y + 1)
        return np.zeros_like(y)

    def irls_weights(self, eta, trials=None):
        """Working weights w = (dμ/dη)² / Var(y) per unit dispersion."""
        mu = self.link.inverse(eta)
        dmu = self.link.inverse_deriv(eta)
        var = np.maximum(self.variance(mu), _EPS)
        w = dmu**2 / var
        if trials is not None and self.name == "binomial":
            w = w * np.asarray(trials, dtype=float)
        return w

    def validate(self, y, trials=None, name="response"):
        """Raise ValueError if ``y`` (and ``trials``) are outside the family's support.

        Parameters
        ----------
        y, trials : array
        name : str
            The response's label, used in the message.
        """
        y = np.asarray(y, dtype=float)
        if self.name == "bernoulli":
            bad = ~np.isin(y, (0.0, 1.0))
            if bad.any():
                raise ValueError(
                    f"family 'bernoulli' needs {name} to be 0/1 (or True/False); found "
                    f"{np.unique(y[bad])[:5].tolist()} in {bad.sum()} rows"
                )
        elif self.name == "binomial":
            n = np.asarray(trials, dtype=float)
            if (n <= 0).any() or (n != np.round(n)).any():
                raise ValueError(f"binomial trials for {name} must be positive integers; "
                                 f"{int(((n <= 0) | (n != np.round(n))).sum())} rows are not")
            if (y < 0).any() or (y != np.round(y)).any():
                raise ValueError(f"binomial successes {name} must be non-negative integers")
            if (y > n).any():
                raise ValueError(f"binomial successes {name} exceed the trials in "
                                 f"{int((y > n).sum())} rows")
        elif self.name == "poisson":
            if (y < 0).any() or (y != np.round(y)).any():
                bad = (y < 0) | (y != np.round(y))
                raise ValueError(
                    f"family 'poisson' needs {name} to be non-negative integer counts; found "
                    f"{np.unique(y[bad])[:5].tolist()} in {int(bad.sum())} rows"
                )


_ALLOWED = {
    "bernoulli": ("logit", "probit", "cloglog"),
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log", "identity"),
    "gaussian": ("identity", "log"),
}
FAMILIES = tuple(_ALLOWED)


def get_link(name: str) -> Link:
    """Return the :class:`Link` called ``name``."""
    if name not in LINKS:
        raise ValueError(f"unknown link {name!r}; expected one of {', '.join(LINKS)}")
    return Link(name)


def get_family(family, link=None) -> Family:
    """Resolve a family name (and optional link name) to a :class:`Family`.

    Parameters
    ----------
    family : str or Family
        ``"bernoulli"``, ``"binomial"``, ``"poisson"`` or ``"gaussian"``.
    link : str, optional
        Defaults to the canonical link (logit, logit, log, identity).

    Raises
    ------
    ValueError
        For an unknown family, or a link the family does not support.
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        family = family.name
    if not isinstance(family, str) or family.lower() not in _ALLOWED:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    family = family.lower()
    allowed = _ALLOWED[family]
    link = allowed[0] if link is None else link
    if link not in LINKS:
        raise ValueError(f"unknown link {link!r}; expected one of {', '.join(LINKS)}")
    if link not in allowed:
        raise ValueError(f"link {link!r} is not available for family {family!r}; "
                         f"use one of {', '.join(allowed)}")
    return Family(family, Link(link))
