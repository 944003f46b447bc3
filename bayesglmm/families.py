"""Families and links in plain NumPy, shared by every engine.

A family is a class, a link is a class, as in glum's ``_distribution.py`` and ``_link.py``: the
base :class:`Family` gives the formulas that hold for any response distribution (the working
quantities, the score, the relative and saturated log-likelihoods) and the defaults of its
properties; :class:`Bernoulli`, :class:`Binomial`, :class:`Poisson`, :class:`Gaussian`,
:class:`NegativeBinomial`, :class:`BetaBinomial` and :class:`Gamma` override what differs. The base :class:`Link` is answered by :class:`Logit`, :class:`Probit`,
:class:`CLogLog`, :class:`Log`, :class:`Identity` and :class:`Inverse` (``link``, ``inverse``, ``inverse_deriv``
dμ/dη and ``inverse_deriv2`` d²μ/dη²). The engines *ask* a family — ``loglik_relative``,
``working``, ``has_scale``, ... — and never test its name: ``name`` is a label (results,
reports, save files) and a key of the PyMC and statsmodels translation tables. :func:`get_family`
turns names into objects, as users and the rest of the package make them.

Checklist for adding a family
-----------------------------
As the negative binomial, beta-binomial and Gamma were added. The package reads a family's or a
link's ``name`` only as a label and in the tables of step 5.

1. **The class**, in this module: ``class NegativeBinomial(Family)`` with

   * ``name`` (the label users pass to :func:`get_family`, stored in save files), ``links`` (the
     :class:`Link` classes it takes, canonical first: the first is the default and defines
     :attr:`Family.canonical`) and ``kernel_codes`` (step 3; ``{}`` is fine);
   * the properties where the base's default is wrong: ``needs_trials`` (each response comes with
     trials: ``cbind``/``p()``), ``counts_successes`` (successes out of trials, μ a probability:
     separation, clipping), ``response_kind`` (``"binary"``, ``"count"`` or ``"continuous"``: how
     PyMC and the saved data hold y, which posterior predictive plot), ``has_scale`` (step 4:
     today it means *the Gaussian σ*, and sends a frequentist fit to the LMM engine);
   * the methods the base leaves abstract, ``variance``, ``variance_deriv``, ``loglik_kernel`` and
     ``sample``, and those whose default does not hold: ``loglik_constant`` (default 0),
     ``initial_mu`` (default y: it must lie where the link is finite), ``clip_mu`` (default none:
     clip where V(μ) vanishes at the support's edge), ``saturated_mean`` (default y),
     ``loglik_relative`` (default kernel(μ) − kernel(μ̂), correct; override with a form accurate
     for large responses, as Poisson's), ``validate`` (default: any y). ``working``, ``score``,
     ``loglik_obs`` and ``loglik_saturated`` follow from these and need no override.

   A second parameter (a negative binomial's size, a beta-binomial's precision, a Gamma's shape)
   is the family's **dispersion**: ``has_dispersion = True``, its name ``dispersion_name``, its
   value set by the engines with :meth:`Family.with_dispersion` (the methods read it as
   ``self._phi(sigma)``: ``sigma`` a value given explicitly, the Gaussian σ's argument),
   ``dispersion_start`` (a moment estimate the fits start from), ``title`` (how a summary prints
   it), ``laplace_curvature`` (``"observed"``: glmmTMB's exact Hessian in the Laplace
   determinant), ``quasi_undefined`` (why PQL and GEE refuse it, "" where its dispersion is a
   quasi-likelihood scale) and ``pymc_observed`` (its PyMC distribution). The engines then
   optimise log φ with (θ, β) (:class:`~bayesglmm.frequentist.laplace.DispersionObjective`),
   profile it, give it a prior on 1/√φ (:mod:`~bayesglmm.priors`, ``"dispersion"``) and report it
   as the ``"dispersion"`` row of ``variance_components()``. A family that is not an exponential
   family for fixed φ (the beta-binomial) overrides ``working`` and ``score``. ``has_scale`` keeps
   its meaning, *the Gaussian σ* (the LMM route).
2. **Register it** in ``_FAMILY_CLASSES`` below (which makes :data:`FAMILIES`, ``_ALLOWED`` and
   :func:`get_family`'s errors); a new link likewise, a :class:`Link` subclass in
   ``_LINK_CLASSES`` (:data:`LINKS`).
3. **The compiled kernels** switch on :attr:`Family.kernel_code`, the codes of
   :mod:`bayesglmm.kernels`: 0, 1, 2 a probability by logit, probit, cloglog; 3, 4 a Poisson mean
   by log, identity; −1 (``NO_KERNEL``) none. A (family, link) pair absent from ``kernel_codes`` is
   −1: frequentist AGQ takes its NumPy node loop (correct, slower), NUTS PyMC's own distribution
   instead of the fused Op. To compile it, add the row function under a new kernel_code in
   :mod:`bayesglmm.kernels`: a named constant there (used in ``kernel_codes`` here) and its branch
   in :func:`~bayesglmm.kernels.row_terms` (the frequentist AGQ); to marginalize it under NUTS, its
   branches in :func:`~bayesglmm.kernels.row_kernel` and :func:`~bayesglmm.kernels.score_weight`
   and the code in :data:`bayesglmm.bayes.quadrature.AGQ_CODES` (a canonical-link family without
   one passes :func:`~bayesglmm.bayes.marginalized.check_marginalizable` and then fails in
   :func:`~bayesglmm.bayes.agq_op.agq_kind`); to sample it fast, its branch in
   :func:`~bayesglmm.kernels.fused_row`, the code in :data:`bayesglmm.bayes.loglik_op.FUSED_CODES`
   and its loop in the Op's kernel.
4. **The engines ask properties**; check what the new family answers at each:

   * ``has_scale``: the frequentist LMM route (:mod:`~bayesglmm.frequentist.fit`,
     :mod:`~bayesglmm.frequentist.laplace` refuses it, :mod:`~bayesglmm.frequentist.profile`,
     :mod:`~bayesglmm.compare`, :mod:`~bayesglmm.simulate`, :mod:`~bayesglmm.teaching`), the
     ``sigma`` prior and parameter (:mod:`~bayesglmm.priors`, :mod:`~bayesglmm.bayes.model`,
     :mod:`~bayesglmm.bayes.posterior`, :mod:`~bayesglmm.report`);
   * ``has_scale and canonical`` as "a Gaussian identity-link LMM": :mod:`~bayesglmm.scaling`,
     :func:`~bayesglmm.bayes.marginalized.exact_marginal`, :mod:`~bayesglmm.frequentist.lmm`;
   * ``counts_successes`` (else ``not has_scale`` read as a positive mean): separation
     (:mod:`~bayesglmm.frequentist.separation`), the marginal coefficients' clipping
     (:mod:`~bayesglmm.marginal`), the PyMC observed variable (step 5);
   * ``canonical``: PIRLS's tolerance and the observed-information terms (Laplace, AGQ), PQL's
     message, ``logit_p`` in PyMC; ``link.is_identity``: the intercept prior's centre, the
     marginal coefficients being β, the Gaussian LMM route;
   * ``needs_trials``, ``validate``: the design (:mod:`~bayesglmm.design`).
5. **The translation tables**, the only places outside this module that read a name: the PyMC
   inverse links ``_INVERSE_LINK`` in :mod:`bayesglmm.bayes.model` (a new link), and beside it
   ``_likelihood``, which picks the observed variable by ``counts_successes``/``has_scale`` with
   Poisson as the rest — a new distribution needs its branch there, or it is drawn as Poisson;
   the statsmodels families and links of :func:`bayesglmm.frequentist.gee.sm_family` (a missing
   entry is a KeyError). bambi's names reach :func:`get_family` unchanged
   (:func:`bayesglmm.interop.from_bambi`).
6. **Tests**: ``tests/test_families.py`` runs over :data:`FAMILIES` and :data:`LINKS`: add the
   family to ``loglik_obs`` against ``scipy.stats``, ``working`` against differences of
   ``loglik_kernel`` (every link), the support checks, ``response_kind``/properties and the kernel
   codes; a new link is checked by the link identities and derivatives. Then the family's
   reference fit against R (glmer or glmmTMB; the R call beside the numbers, tolerances as
   measured) in the engine's test file, the PyMC log-likelihood equal to
   :meth:`Family.loglik_obs` at a point (``tests/test_bayes_model.py``), and, with a kernel code,
   the compiled loops against the NumPy path (``tests/test_agq.py``, ``tests/test_loglik_op.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, NamedTuple

import numpy as np
from scipy import special

from .kernels import (BETABINOMIAL_CLOGLOG, BETABINOMIAL_LOGIT, BETABINOMIAL_PROBIT, BINOMIAL_CLOGLOG,
                      BINOMIAL_LOGIT, BINOMIAL_PROBIT, GAMMA_INVERSE, GAMMA_LOG, NEGBIN_LOG, NO_KERNEL,
                      POISSON_IDENTITY, POISSON_LOG)

__all__ = ["Link", "Logit", "Probit", "CLogLog", "Log", "Identity", "Inverse", "Family", "Bernoulli", "Binomial",
           "Poisson", "Gaussian", "NegativeBinomial", "BetaBinomial", "Gamma", "Working", "LINKS", "FAMILIES",
           "get_family", "get_link"]

_EPS = np.finfo(float).eps


# ---------------------------------------------------------------------------------------- links
@dataclass(frozen=True)
class Link:
    """A link function g with μ = g⁻¹(η): the base class, which the engines ask and the links
    (:class:`Logit`, :class:`Probit`, :class:`CLogLog`, :class:`Log`, :class:`Identity`)
    answer. Made by :func:`get_link` from a name, or by calling a subclass (``Logit()``); two
    links are equal when they are of one class.

    Attributes
    ----------
    name : str
        ``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"`` or ``"identity"``: a label.
    is_identity : bool
        True for μ = η (linear models: the marginal coefficients are the conditional ones, the
        intercept's prior is centred at the response's mean).
    """

    name: ClassVar[str] = ""
    is_identity: ClassVar[bool] = False

    def link(self, mu):
        """η = g(μ)."""
        raise NotImplementedError

    def inverse(self, eta):
        """μ = g⁻¹(η)."""
        raise NotImplementedError

    def inverse_deriv(self, eta):
        """dμ/dη at η."""
        raise NotImplementedError

    def inverse_deriv2(self, eta):
        """d²μ/dη² at η."""
        raise NotImplementedError

    def __setstate__(self, state):
        # pickled when Link was one dataclass holding its name (legacy save files): become its class
        if state and "name" in state:
            object.__setattr__(self, "__class__", _LINK_CLASSES[state["name"]])


class Logit(Link):
    """μ = 1/(1 + e^−η), the canonical link of a probability."""

    name = "logit"

    def link(self, mu):
        return special.logit(np.asarray(mu, dtype=float))

    def inverse(self, eta):
        return special.expit(np.asarray(eta, dtype=float))

    def inverse_deriv(self, eta):
        p = special.expit(np.asarray(eta, dtype=float))
        return p * (1.0 - p)

    def inverse_deriv2(self, eta):
        p = special.expit(np.asarray(eta, dtype=float))
        return p * (1.0 - p) * (1.0 - 2.0 * p)


class Probit(Link):
    """μ = Φ(η), the standard normal distribution function."""

    name = "probit"

    def link(self, mu):
        return special.ndtri(np.asarray(mu, dtype=float))

    def inverse(self, eta):
        return special.ndtr(np.asarray(eta, dtype=float))

    def inverse_deriv(self, eta):
        eta = np.asarray(eta, dtype=float)
        return np.exp(-0.5 * eta**2) / np.sqrt(2.0 * np.pi)

    def inverse_deriv2(self, eta):
        eta = np.asarray(eta, dtype=float)
        return -eta * (np.exp(-0.5 * eta**2) / np.sqrt(2.0 * np.pi))


class CLogLog(Link):
    """μ = 1 − exp(−e^η), the complementary log-log link."""

    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-np.asarray(mu, dtype=float)))

    def inverse(self, eta):
        return -np.expm1(-np.exp(np.asarray(eta, dtype=float)))

    def inverse_deriv(self, eta):
        eta = np.asarray(eta, dtype=float)
        return np.exp(eta - np.exp(eta))

    def inverse_deriv2(self, eta):
        eta = np.asarray(eta, dtype=float)
        return np.exp(eta - np.exp(eta)) * -np.expm1(eta)


class Log(Link):
    """μ = e^η, the canonical link of a Poisson mean."""

    name = "log"

    def link(self, mu):
        return np.log(np.asarray(mu, dtype=float))

    def inverse(self, eta):
        return np.exp(np.asarray(eta, dtype=float))

    def inverse_deriv(self, eta):
        return np.exp(np.asarray(eta, dtype=float))

    def inverse_deriv2(self, eta):
        return np.exp(np.asarray(eta, dtype=float))


class Identity(Link):
    """μ = η, the canonical link of a Gaussian mean."""

    name = "identity"
    is_identity = True

    def link(self, mu):
        return np.asarray(mu, dtype=float)

    def inverse(self, eta):
        return np.asarray(eta, dtype=float)

    def inverse_deriv(self, eta):
        return np.ones_like(np.asarray(eta, dtype=float))

    def inverse_deriv2(self, eta):
        return np.zeros_like(np.asarray(eta, dtype=float))


class Inverse(Link):
    """μ = 1/η, the canonical link of a Gamma mean (R's ``Gamma()`` default)."""

    name = "inverse"

    def link(self, mu):
        return 1.0 / np.asarray(mu, dtype=float)

    def inverse(self, eta):
        return 1.0 / np.asarray(eta, dtype=float)

    def inverse_deriv(self, eta):
        return -1.0 / np.asarray(eta, dtype=float) ** 2

    def inverse_deriv2(self, eta):
        return 2.0 / np.asarray(eta, dtype=float) ** 3


_LINK_CLASSES = {cls.name: cls for cls in (Logit, Probit, CLogLog, Log, Identity, Inverse)}
LINKS = tuple(_LINK_CLASSES)


# ------------------------------------------------------------------------------------- families
class Working(NamedTuple):
    """What the likelihood engines need of each observation at η (see :meth:`Family.working`)."""

    mu: np.ndarray           #: μ = g⁻¹(η) (a probability for Bernoulli/binomial)
    mean: np.ndarray         #: E y (n μ for the binomial)
    score: np.ndarray        #: ∂ℓ/∂η
    weight: np.ndarray       #: Fisher weight E[−∂²ℓ/∂η²] = n μ′² / V(μ)
    dweight: np.ndarray      #: ∂weight/∂η
    obs_weight: np.ndarray   #: observed weight −∂²ℓ/∂η² (= weight for a canonical link)


@dataclass(frozen=True)
class Family:
    """A response distribution with its link: the base class the engines ask.

    The subclasses :class:`Bernoulli`, :class:`Binomial`, :class:`Poisson` and
    :class:`Gaussian` are the families; :func:`get_family` makes one from names. Called
    directly, a subclass takes a :class:`Link` or a link's name and defaults to its canonical
    link (``Binomial("probit")``, ``Poisson()``). Two families are equal when they are of one
    class with equal links. What a new family must define is the module's checklist.

    Parameters
    ----------
    link : Link or str, optional
        One of the family's ``links``; the first (canonical) by default.

    Attributes
    ----------
    name : str
        ``"bernoulli"``, ``"binomial"``, ``"poisson"`` or ``"gaussian"``: a label.
    link : Link
    links : tuple of type
        The :class:`Link` classes the family takes, its canonical link first.
    kernel_codes : dict
        :class:`Link` class → the compiled kernels' code of the pair, a constant of
        :mod:`bayesglmm.kernels` (see :attr:`kernel_code`).
    has_scale : bool
        True if the family has a free dispersion (the Gaussian residual SD).
    needs_trials : bool
        True if each response comes with its number of trials (binomial).
    counts_successes : bool
        True for Bernoulli and binomial responses (successes out of trials, μ a probability):
        the families where a 0/1 predictor can separate the outcomes.
    response_kind : str
        What the response is: ``"binary"`` (Bernoulli), ``"count"`` (binomial successes, Poisson
        counts: held as integers) or ``"continuous"`` (Gaussian). The Bayesian graph, the stored
        data and the posterior predictive check ask this, not the family's name.
    """

    link: Link = None
    #: the value of a dispersion family's second parameter (θ or the shape; see
    #: :attr:`has_dispersion`), set by the engines with :meth:`with_dispersion`; None for the
    #: family a user names (and always for the families without one)
    dispersion: float | None = None

    name: ClassVar[str] = ""
    links: ClassVar[tuple] = ()
    kernel_codes: ClassVar[dict] = {}
    has_scale: ClassVar[bool] = False
    #: True for the families with a second parameter other than the Gaussian σ — the negative
    #: binomial's θ, the beta-binomial's θ, the Gamma's shape —, named :attr:`dispersion_name`
    has_dispersion: ClassVar[bool] = False
    #: the dispersion's name in results (``"theta"``, ``"shape"``; "" without one)
    dispersion_name: ClassVar[str] = ""
    #: whether ``links[0]`` is the family's canonical link (the negative binomial's and the
    #: beta-binomial's canonical links are not among their links)
    first_link_canonical: ClassVar[bool] = True
    #: the curvature of the Laplace approximation's log-determinant: ``"fisher"`` (lme4's glmer:
    #: the IRLS weights) or ``"observed"`` (−∂²ℓ/∂η² at the modes, glmmTMB's exact Hessian: the
    #: dispersion families, whose references are glmmTMB's). The same for a canonical link.
    laplace_curvature: ClassVar[str] = "fisher"
    #: why PQL and GEE are not defined for a dispersion family whose dispersion is not a scale of
    #: the variance function ("" where they are: the Gamma's Var = μ²/shape, a quasi-likelihood
    #: scale they estimate, as glmmPQL and geeglm do)
    quasi_undefined: ClassVar[str] = ""
    needs_trials: ClassVar[bool] = False
    counts_successes: ClassVar[bool] = False
    response_kind: ClassVar[str] = "continuous"

    def __post_init__(self):
        if not self.links:
            raise TypeError("Family is the base class of the families: use get_family(name, link) or one of "
                            f"{', '.join(cls.__name__ for cls in _FAMILY_CLASSES.values())}")
        link = self.links[0]() if self.link is None else self.link
        link = get_link(link) if isinstance(link, str) else link
        if type(link) not in self.links:
            raise ValueError(f"link {link.name!r} is not available for family {self.name!r}; "
                             f"use one of {', '.join(cls.name for cls in self.links)}")
        object.__setattr__(self, "link", link)

    def __setstate__(self, state):
        # pickled when Family was one dataclass of (name, link) (legacy save files): become the
        # class its name names
        if "name" in state:
            state = dict(state)
            object.__setattr__(self, "__class__", _FAMILY_CLASSES[state.pop("name")])
        self.__dict__.update(state)

    @property
    def canonical(self) -> bool:
        """True if the link is the family's canonical link (logit, log, identity, the Gamma's
        inverse): observed and Fisher information coincide."""
        return self.first_link_canonical and type(self.link) is self.links[0]

    def with_dispersion(self, value) -> "Family":
        """This family with its dispersion (θ, shape) fixed at ``value``: what the engines evaluate
        a dispersion family's log-likelihood with. Raises ``ValueError`` for a family without one."""
        if not self.has_dispersion:
            raise ValueError(f"family {self.name!r} has no dispersion parameter")
        value = float(value)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"the {self.name} family's {self.dispersion_name} must be positive and finite, "
                             f"got {value!r}")
        return replace(self, dispersion=value)

    def _phi(self, sigma=None) -> float:
        """The dispersion to evaluate at: ``sigma`` if given, else :attr:`dispersion`."""
        phi = self.dispersion if sigma is None else sigma
        if phi is None:
            raise ValueError(f"the {self.name} family's {self.dispersion_name} is not set: pass it, or use "
                             f"family.with_dispersion(value)")
        return phi

    #: the family's name in a printed summary, ``{}`` taking the dispersion (lme4's glmer.nb
    #: prints ``Negative Binomial(0.9424)``)
    title: ClassVar[str] = ""

    def label(self, dispersion=None) -> str:
        """The family as a summary prints it: its name, or for a dispersion family its title with
        the estimate (``Negative Binomial(0.9424)``, ``Gamma(shape = 2.51)``)."""
        if not self.has_dispersion:
            return self.name
        value = self.dispersion if dispersion is None else dispersion
        return self.title.split("(")[0].strip() if value is None else self.title.format(f"{float(value):.4g}")

    def dispersion_start(self, y, mu, trials=None) -> float:
        """A starting value of the dispersion from the responses and a fit's means (a moment
        estimate); the families with one override it."""
        return 1.0

    def observed_weight_deriv(self, eta, y, trials=None) -> np.ndarray:
        """d/dη of the observed weight −∂²ℓ/∂η² (:attr:`Working.obs_weight`), each row by a central
        difference of the analytic weight (steps 10⁻⁴·max(1, |η|): an error of about 10⁻⁸ of it):
        the derivative of the Laplace log-determinant under ``laplace_curvature = "observed"``."""
        eta = np.asarray(eta, dtype=float)
        h = 1e-4 * np.maximum(1.0, np.abs(eta))
        up = self.working(eta + h, y, trials).obs_weight
        down = self.working(eta - h, y, trials).obs_weight
        return (up - down) / (2.0 * h)

    @property
    def kernel_code(self) -> int:
        """The (family, link) pair as the integer the compiled row functions switch on, one of the
        codes of :mod:`bayesglmm.kernels`: 0, 1, 2 a probability by logit, probit, cloglog
        (``BINOMIAL_LOGIT``, ``BINOMIAL_PROBIT``, ``BINOMIAL_CLOGLOG``); 3, 4 a Poisson mean by
        log, identity (``POISSON_LOG``, ``POISSON_IDENTITY``); −1 none (``NO_KERNEL``: the
        Gaussian, no AGQ)."""
        return self.kernel_codes.get(type(self.link), NO_KERNEL)

    def initial_mu(self, y, trials=None):
        """A starting mean for IRLS, inside the support: y itself here; (y + ½)/(n + 1) for a
        probability, y + 0.1 for a Poisson mean."""
        return np.asarray(y, dtype=float)

    def variance(self, mu):
        """The variance function V(μ) (per trial for the binomial)."""
        raise NotImplementedError

    def variance_deriv(self, mu):
        """dV/dμ."""
        raise NotImplementedError

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

    def irls_weights(self, eta, trials=None):
        """Working weights w = n (dμ/dη)² / V(μ) per unit dispersion: :attr:`Working.weight` of
        :meth:`working` (n the trials of a family that has them, else 1)."""
        return self.working(eta, 0.0, trials if self.needs_trials else None).weight

    def clip_mu(self, mu):
        """μ kept inside the open support of the mean where the variance function vanishes at the
        edge (a probability within [ε, 1 − ε]), so that working weights stay finite when a
        separated term drives μ to 0 or 1; other families' μ is returned unchanged."""
        return np.asarray(mu, dtype=float)

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
        raise NotImplementedError

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
        raise NotImplementedError

    def saturated_mean(self, y, trials=None):
        """The mean of the saturated fit, μ̂ = y (for a probability, per trial: y / n)."""
        return np.asarray(y, dtype=float)

    def loglik_relative(self, y, mu, trials=None):
        """ℓ(y; μ) − ℓ(y; μ̂) per observation, μ̂ the saturated mean: minus half the unit deviance,
        for the counting families (Bernoulli, binomial, Poisson).

        Here the difference of two :meth:`loglik_kernel` values, correct for any family; the
        families override it with a form accurate to about ε·n, where a sum of kernels (of order
        y log μ) is accurate only to ε·Σ|ℓᵢ|: with Poisson counts near 10⁷ that was 10⁻⁵ of
        log-likelihood, enough to stop an optimiser short.
        """
        return self.loglik_kernel(y, mu, trials) - self.loglik_kernel(y, self.saturated_mean(y, trials), trials)

    def loglik_saturated(self, y, trials=None):
        """ℓ(y; μ̂) per observation, every constant included: with :meth:`loglik_relative`,
        ``loglik_obs(y, μ) = loglik_relative(y, μ) + loglik_saturated(y)``."""
        mu_hat = self.saturated_mean(y, trials)
        return self.loglik_kernel(y, mu_hat, trials) + self.loglik_constant(y, trials)

    def loglik_constant(self, y, trials=None):
        """The part of :meth:`loglik_obs` free of the parameters: log C(n, y) for the binomial,
        −log y! for the Poisson, 0 for the Gaussian (its normalising term involves σ)."""
        return np.zeros_like(np.asarray(y, dtype=float))

    def validate(self, y, trials=None, name="response"):
        """Raise ValueError if ``y`` (and ``trials``) are outside the family's support (here:
        any y is).

        Parameters
        ----------
        y, trials : array
        name : str
            The response's label, used in the message.
        """


class Binomial(Family):
    """Successes out of ``trials``, μ the success probability: V(μ) = μ(1 − μ) per trial.
    Links: logit (canonical), probit, cloglog. With ``trials`` None each row is one trial."""

    name = "binomial"
    links = (Logit, Probit, CLogLog)
    kernel_codes = {Logit: BINOMIAL_LOGIT, Probit: BINOMIAL_PROBIT, CLogLog: BINOMIAL_CLOGLOG}
    needs_trials = True
    counts_successes = True
    response_kind = "count"

    def initial_mu(self, y, trials=None):
        y = np.asarray(y, dtype=float)
        n = 1.0 if trials is None else np.asarray(trials, dtype=float)
        return np.clip((y + 0.5) / (n + 1.0), 1e-3, 1 - 1e-3)

    def variance(self, mu):
        mu = np.asarray(mu, dtype=float)
        return mu * (1.0 - mu)

    def variance_deriv(self, mu):
        return 1.0 - 2.0 * np.asarray(mu, dtype=float)

    def clip_mu(self, mu):
        return np.clip(np.asarray(mu, dtype=float), _EPS, 1.0 - _EPS)

    def sample(self, mu, trials=None, sigma=None, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        mu = np.asarray(mu, dtype=float)
        n = np.ones_like(mu) if trials is None else np.asarray(trials)
        return rng.binomial(n.astype(np.int64), np.clip(mu, 0.0, 1.0)).astype(float)

    def loglik_kernel(self, y, mu, trials=None, sigma=None):
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        n = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
        p = np.clip(mu, _EPS, 1.0 - _EPS)
        return special.xlogy(y, p) + special.xlog1py(n - y, -p)

    def saturated_mean(self, y, trials=None):
        y = np.asarray(y, dtype=float)
        return y / (np.ones_like(y) if trials is None else np.asarray(trials, dtype=float))

    def loglik_relative(self, y, mu, trials=None):
        """ℓ(y; μ) − ℓ(y; μ̂) per observation as y log(p/p̂) + (n − y) log((1 − p)/(1 − p̂)), each
        a product of a count and the log of a ratio near 1; for 0/1 outcomes (``trials`` None) the
        saturated fit's ℓ is 0 and :meth:`loglik_kernel` is already relative to it."""
        if trials is None:  # 0/1 outcomes: the kernel is already relative (and a third cheaper)
            return self.loglik_kernel(y, mu)
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        pos = y > 0
        n = np.asarray(trials, dtype=float)
        p = np.clip(mu, _EPS, 1.0 - _EPS)
        phat = y / n
        rest = n - y > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(pos, y * np.log(p / np.where(pos, phat, 1.0)), 0.0)
            b = np.where(rest, (n - y) * np.log((1.0 - p) / np.where(rest, 1.0 - phat, 1.0)), 0.0)
        return a + b

    def loglik_constant(self, y, trials=None):
        y = np.asarray(y, dtype=float)
        if trials is None:
            return np.zeros_like(y)
        n = np.asarray(trials, dtype=float)
        return special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)

    def validate(self, y, trials=None, name="response"):
        y = np.asarray(y, dtype=float)
        n = np.asarray(trials, dtype=float)
        if (n <= 0).any() or (n != np.round(n)).any():
            raise ValueError(f"binomial trials for {name} must be positive integers; "
                             f"{int(((n <= 0) | (n != np.round(n))).sum())} rows are not")
        if (y < 0).any() or (y != np.round(y)).any():
            raise ValueError(f"binomial successes {name} must be non-negative integers")
        if (y > n).any():
            raise ValueError(f"binomial successes {name} exceed the trials in "
                             f"{int((y > n).sum())} rows")


class Bernoulli(Binomial):
    """A 0/1 response: the binomial with one trial (``trials`` None)."""

    name = "bernoulli"
    needs_trials = False
    response_kind = "binary"

    def validate(self, y, trials=None, name="response"):
        y = np.asarray(y, dtype=float)
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise ValueError(
                f"family 'bernoulli' needs {name} to be 0/1 (or True/False); found "
                f"{np.unique(y[bad])[:5].tolist()} in {bad.sum()} rows"
            )


class Poisson(Family):
    """Counts with mean μ: V(μ) = μ. Links: log (canonical), identity."""

    name = "poisson"
    links = (Log, Identity)
    kernel_codes = {Log: POISSON_LOG, Identity: POISSON_IDENTITY}
    response_kind = "count"

    def initial_mu(self, y, trials=None):
        return np.asarray(y, dtype=float) + 0.1

    def variance(self, mu):
        return np.asarray(mu, dtype=float)

    def variance_deriv(self, mu):
        return np.ones_like(np.asarray(mu, dtype=float))

    def sample(self, mu, trials=None, sigma=None, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        mu = np.asarray(mu, dtype=float)
        if np.any(mu < 0):
            raise ValueError("cannot draw Poisson counts with a negative mean (identity link)")
        return rng.poisson(mu).astype(float)

    def loglik_kernel(self, y, mu, trials=None, sigma=None):
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        return special.xlogy(y, mu) - mu

    def loglik_relative(self, y, mu, trials=None):
        """ℓ(y; μ) − ℓ(y; μ̂) per observation as y log(μ/y) − (μ − y): a count times the log of a
        ratio near 1, accurate to about ε·n for counts near 10⁷."""
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        pos = y > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(pos, y * np.log(mu / np.where(pos, y, 1.0)), 0.0) - (mu - y)

    def loglik_constant(self, y, trials=None):
        return -special.gammaln(np.asarray(y, dtype=float) + 1)

    def validate(self, y, trials=None, name="response"):
        y = np.asarray(y, dtype=float)
        if (y < 0).any() or (y != np.round(y)).any():
            bad = (y < 0) | (y != np.round(y))
            raise ValueError(
                f"family 'poisson' needs {name} to be non-negative integer counts; found "
                f"{np.unique(y[bad])[:5].tolist()} in {int(bad.sum())} rows"
            )


class Gaussian(Family):
    """A normal response with mean μ and residual SD σ (``sigma``): V(μ) = 1. Links: identity
    (canonical: a linear mixed model), log."""

    name = "gaussian"
    links = (Identity, Log)
    has_scale = True

    def variance(self, mu):
        return np.ones_like(np.asarray(mu, dtype=float))

    def variance_deriv(self, mu):
        return np.zeros_like(np.asarray(mu, dtype=float))

    def sample(self, mu, trials=None, sigma=None, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        mu = np.asarray(mu, dtype=float)
        if sigma is None:
            raise ValueError("drawing Gaussian responses needs sigma")
        return rng.normal(mu, sigma)

    def loglik_kernel(self, y, mu, trials=None, sigma=None):
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        if sigma is None:
            raise ValueError("the gaussian log-likelihood needs sigma")
        return -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * ((y - mu) / sigma) ** 2

    def loglik_relative(self, y, mu, trials=None):
        raise ValueError("loglik_relative is for the counting families; a Gaussian model is an LMM")


def _lgamma_ratio(y, theta):
    """log Γ(y + θ) − log Γ(θ) − y log θ, accurate for any θ > 0 (→ 0 as θ → ∞): the difference
    of log-gammas for θ ≤ 100, and Stirling's series beyond (its first omitted term below 10⁻¹³
    there), where the difference loses digits to cancellation: 10⁻¹⁰ at θ = 10⁵, all of them at
    θ = 10⁹ (θ log θ ≈ 10¹⁰ against a log-likelihood of order 1). A profile of the negative
    binomial's or beta-binomial's θ goes there, towards the Poisson and binomial limits."""
    y = np.asarray(y, dtype=float)
    theta = np.broadcast_to(np.asarray(theta, dtype=float), np.broadcast(y, theta).shape)
    big = theta > 100.0
    t = np.where(big, theta, 100.0)
    z = t + y
    stirling = ((z - 0.5) * np.log1p(y / t) - y + (1.0 / (12.0 * z) - 1.0 / (12.0 * t))
                - (1.0 / (360.0 * z**3) - 1.0 / (360.0 * t**3)) + (1.0 / (1260.0 * z**5) - 1.0 / (1260.0 * t**5)))
    small = np.where(big, 1.0, theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = special.gammaln(y + small) - special.gammaln(small) - special.xlogy(y, small)
    return np.where(big, stirling, direct)


def _counts_check(family, y, name):
    y = np.asarray(y, dtype=float)
    bad = (y < 0) | (y != np.round(y))
    if bad.any():
        raise ValueError(f"family {family.name!r} needs {name} to be non-negative integer counts; found "
                         f"{np.unique(y[bad])[:5].tolist()} in {int(bad.sum())} rows")


class NegativeBinomial(Family):
    """Counts with mean μ and size θ (NB2, the Poisson–gamma mixture: y | ε ~ Poisson(με),
    ε ~ Gamma(θ, θ)): V(μ) = μ + μ²/θ, so 1/√θ is the coefficient of variation of the gamma
    multiplier. glmmTMB's ``nbinom2`` (its ``sigma()`` is θ), lme4's ``glmer.nb``, bambi's
    ``negativebinomial`` (its ``alpha`` is θ), R's ``MASS::rnbinom(size = θ, mu = μ)``.
    Link: log. The log link is not the canonical one (log(μ/(μ + θ))): observed and Fisher
    information differ."""

    name = "negativebinomial"
    links = (Log,)
    kernel_codes = {Log: NEGBIN_LOG}
    first_link_canonical = False
    response_kind = "count"
    has_dispersion = True
    dispersion_name = "theta"
    laplace_curvature = "observed"
    title = "Negative Binomial({})"
    quasi_undefined = ("the negative binomial's θ is not a scale of its variance (μ + μ²/θ): PQL and GEE would need "
                       "θ fixed (glmer.nb alternates θ with glmer fits, geeglm takes it given); fit it by 'laplace' or "
                       "'agq', or use family='poisson' with an observation-level random effect")

    def initial_mu(self, y, trials=None):
        return np.asarray(y, dtype=float) + 0.1

    def variance(self, mu):
        mu = np.asarray(mu, dtype=float)
        return mu + mu**2 / self._phi()

    def variance_deriv(self, mu):
        return 1.0 + 2.0 * np.asarray(mu, dtype=float) / self._phi()

    def sample(self, mu, trials=None, sigma=None, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        theta = self._phi(sigma)
        mu = np.asarray(mu, dtype=float)
        return rng.negative_binomial(theta, theta / (theta + mu)).astype(float)

    def loglik_kernel(self, y, mu, trials=None, sigma=None):
        theta = self._phi(sigma)
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        # log Γ(y + θ) − log Γ(θ) + θ log θ + y log μ − (y + θ) log(μ + θ), written so that it keeps its
        # digits as θ → ∞ (the Poisson limit: a profile of θ goes there)
        return _lgamma_ratio(y, theta) + special.xlogy(y, mu) - (y + theta) * np.log1p(mu / theta)

    def loglik_relative(self, y, mu, trials=None):
        """ℓ(y; μ) − ℓ(y; y) at the same θ, as y log(μ/y) − (y + θ) log1p((μ − y)/(y + θ)):
        counts times logarithms of ratios near 1."""
        theta = self._phi()
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        pos = y > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(pos, y * np.log(mu / np.where(pos, y, 1.0)), 0.0)
        return a - (y + theta) * np.log1p((mu - y) / (y + theta))

    def loglik_constant(self, y, trials=None):
        return -special.gammaln(np.asarray(y, dtype=float) + 1)

    def dispersion_start(self, y, mu, trials=None):
        y = np.asarray(y, dtype=float)
        mu = np.maximum(np.asarray(mu, dtype=float), 1e-8)
        excess = float(np.sum((y - mu) ** 2 - mu))
        return float(np.clip(np.sum(mu**2) / excess, 0.05, 1e3)) if excess > 0 else 1e3

    def validate(self, y, trials=None, name="response"):
        _counts_check(self, y, name)

    def pymc_observed(self, name, mu, dispersion, trials, observed, dims):
        """The PyMC observed variable of the family (PyMC's ``NegativeBinomial(mu, alpha=θ)``)."""
        import pymc as pm

        return pm.NegativeBinomial(name, mu=mu, alpha=dispersion, observed=observed, dims=dims)


class Gamma(Family):
    """A positive continuous response with mean μ and shape k: V(μ) = μ²/k (coefficient of
    variation 1/√k). glmmTMB's ``Gamma`` (its ``sigma()`` is 1/√k), R's ``Gamma()`` (dispersion
    1/k), bambi's ``gamma`` (its ``alpha`` is k). Links: inverse (canonical, R's and bambi's
    default), log, identity."""

    name = "gamma"
    links = (Inverse, Log, Identity)
    kernel_codes = {Log: GAMMA_LOG, Inverse: GAMMA_INVERSE}
    response_kind = "continuous"
    has_dispersion = True
    dispersion_name = "shape"
    laplace_curvature = "observed"
    title = "Gamma(shape = {})"

    def variance(self, mu):
        return np.asarray(mu, dtype=float) ** 2 / self._phi()

    def variance_deriv(self, mu):
        return 2.0 * np.asarray(mu, dtype=float) / self._phi()

    def sample(self, mu, trials=None, sigma=None, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        k = self._phi(sigma)
        mu = np.asarray(mu, dtype=float)
        if np.any(mu <= 0):
            raise ValueError("cannot draw Gamma responses with a mean ≤ 0 (inverse or identity link)")
        return rng.gamma(k, mu / k)

    def loglik_kernel(self, y, mu, trials=None, sigma=None):
        k = self._phi(sigma)
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = y / mu
            out = k * np.log(k * r) - k * r - special.gammaln(k)
        return np.where(mu > 0, out, -np.inf)

    def loglik_relative(self, y, mu, trials=None):
        """ℓ(y; μ) − ℓ(y; y) = −k (d − log1p(d)), d = (y − μ)/μ."""
        k = self._phi()
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (y - mu) / mu
            out = -k * (d - np.log1p(d))
        return np.where(mu > 0, out, -np.inf)

    def loglik_constant(self, y, trials=None):
        return -np.log(np.asarray(y, dtype=float))

    def dispersion_start(self, y, mu, trials=None):
        y = np.asarray(y, dtype=float)
        mu = np.asarray(mu, dtype=float)
        cv2 = float(np.mean(((y - mu) / mu) ** 2))
        return float(np.clip(1.0 / cv2, 0.05, 1e4)) if cv2 > 0 else 1e4

    def validate(self, y, trials=None, name="response"):
        y = np.asarray(y, dtype=float)
        bad = ~(y > 0)
        if bad.any():
            raise ValueError(f"family 'gamma' needs {name} to be positive; found {np.unique(y[bad])[:5].tolist()} "
                             f"in {int(bad.sum())} rows")

    def pymc_observed(self, name, mu, dispersion, trials, observed, dims):
        """PyMC's ``Gamma(alpha=k, beta=k/μ)``."""
        import pymc as pm

        return pm.Gamma(name, alpha=dispersion, beta=dispersion / mu, observed=observed, dims=dims)


class BetaBinomial(Binomial):
    """Successes out of ``trials`` whose success probability varies as a Beta with mean μ and
    precision θ = α + β (α = μθ): Var y = nμ(1 − μ)(1 + (n − 1)ρ), ρ = 1/(1 + θ) the
    intra-class correlation. glmmTMB's ``betabinomial`` (its ``sigma()`` is θ), bambi's
    ``beta_binomial`` (its ``alpha``, ``beta`` are μθ, (1 − μ)θ). Links: logit, probit, cloglog,
    none of them canonical (the beta-binomial is not an exponential family): its score and
    weights are the family's own."""

    name = "betabinomial"  # its links, the binomial's; log C(n, y), the binomial's constant
    kernel_codes = {Logit: BETABINOMIAL_LOGIT, Probit: BETABINOMIAL_PROBIT, CLogLog: BETABINOMIAL_CLOGLOG}
    first_link_canonical = False
    has_dispersion = True
    dispersion_name = "theta"
    laplace_curvature = "observed"
    title = "Beta-binomial(theta = {})"
    quasi_undefined = ("the beta-binomial is not a quasi-likelihood family (its variance inflation 1 + (n − 1)ρ "
                       "depends on each row's trials): PQL and GEE are not defined for it; fit it by 'laplace' or "
                       "'agq', or use family='binomial' with an observation-level random effect")

    def _inflation(self, trials):
        n = 1.0 if trials is None else np.asarray(trials, dtype=float)
        return 1.0 + (n - 1.0) / (1.0 + self._phi())

    def working(self, eta, y, trials=None) -> Working:
        """The exact score and observed weight of the beta-binomial (digamma and trigamma
        differences); as Fisher weight the binomial's divided by the variance inflation
        1 + (n − 1)ρ (the quasi-likelihood weight, exact in expectation to first order: PIRLS's
        step and AGQ's scaling, which need no more)."""
        eta = np.asarray(eta, dtype=float)
        theta = self._phi()
        n = 1.0 if trials is None else np.asarray(trials, dtype=float)
        y = np.asarray(y, dtype=float)
        mu = self.link.inverse(eta)
        mc = self.clip_mu(mu)
        d1, d2 = self.link.inverse_deriv(eta), self.link.inverse_deriv2(eta)
        a, b = mc * theta, (1.0 - mc) * theta
        l1 = theta * (special.digamma(y + a) - special.digamma(a) - special.digamma(n - y + b) + special.digamma(b))
        l2 = theta**2 * (special.polygamma(1, y + a) - special.polygamma(1, a)
                         + special.polygamma(1, n - y + b) - special.polygamma(1, b))
        var = np.maximum(self.variance(mc), 1e-300)
        c = self._inflation(trials)
        weight = n * d1**2 / var / c
        dweight = n * (2.0 * d1 * d2 / var - d1**3 * self.variance_deriv(mc) / var**2) / c
        return Working(mu, n * mu, l1 * d1, weight, dweight, -(l2 * d1**2 + l1 * d2))

    def score(self, eta, y, trials=None) -> np.ndarray:
        return self.working(eta, y, trials).score

    def sample(self, mu, trials=None, sigma=None, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        theta = self._phi(sigma)
        mu = np.clip(np.asarray(mu, dtype=float), _EPS, 1.0 - _EPS)
        n = np.ones_like(mu) if trials is None else np.asarray(trials)
        p = rng.beta(mu * theta, (1.0 - mu) * theta)
        return rng.binomial(n.astype(np.int64), p).astype(float)

    def loglik_kernel(self, y, mu, trials=None, sigma=None):
        theta = self._phi(sigma)
        y = np.asarray(y, dtype=float)
        n = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
        p = np.clip(np.asarray(mu, dtype=float), _EPS, 1.0 - _EPS)
        a, b = p * theta, (1.0 - p) * theta
        # B(y + a, n − y + b)/B(a, b) by log-gamma ratios that keep their digits as θ → ∞ (the binomial)
        return (_lgamma_ratio(y, a) + _lgamma_ratio(n - y, b) - _lgamma_ratio(n, theta)
                + special.xlogy(y, p) + special.xlog1py(n - y, -p))

    def loglik_relative(self, y, mu, trials=None):
        return self.loglik_kernel(y, mu, trials) - self.loglik_kernel(y, self.saturated_mean(y, trials), trials)

    def dispersion_start(self, y, mu, trials=None):
        y = np.asarray(y, dtype=float)
        n = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
        mu = np.clip(np.asarray(mu, dtype=float), 1e-6, 1 - 1e-6)
        big = n > 1
        if not big.any():
            return 1e3
        # E (y − nμ)² = nμ(1 − μ)(1 + (n − 1)ρ): ρ by moments over the rows with n > 1
        r = ((y - n * mu) ** 2 / (n * mu * (1 - mu)) - 1.0)[big] / (n[big] - 1.0)
        rho = float(np.clip(np.mean(r), 1e-3, 0.95))
        return 1.0 / rho - 1.0

    def validate(self, y, trials=None, name="response"):
        super().validate(y, np.ones_like(np.asarray(y, dtype=float)) if trials is None else trials, name)

    def pymc_observed(self, name, mu, dispersion, trials, observed, dims):
        """PyMC's ``BetaBinomial(n, alpha=μθ, beta=(1 − μ)θ)``."""
        import pymc as pm

        n = np.ones(len(observed), dtype=np.int64) if trials is None else np.asarray(trials).astype(np.int64)
        return pm.BetaBinomial(name, n=n, alpha=mu * dispersion, beta=(1.0 - mu) * dispersion, observed=observed,
                               dims=dims)


_FAMILY_CLASSES = {cls.name: cls for cls in (Bernoulli, Binomial, Poisson, Gaussian, NegativeBinomial, BetaBinomial,
                                             Gamma)}
#: other names of the families (glmmTMB's, bambi's), accepted by :func:`get_family`
_ALIASES = {"nbinom2": "negativebinomial", "negative_binomial": "negativebinomial",
            "beta_binomial": "betabinomial"}
FAMILIES = tuple(_FAMILY_CLASSES)
#: family name → the names of its links, the canonical (default) first
_ALLOWED = {name: tuple(link.name for link in cls.links) for name, cls in _FAMILY_CLASSES.items()}


def get_link(name: str) -> Link:
    """Return the :class:`Link` called ``name``."""
    if name not in LINKS:
        raise ValueError(f"unknown link {name!r}; expected one of {', '.join(LINKS)}")
    return _LINK_CLASSES[name]()


def get_family(family, link=None) -> Family:
    """Resolve a family name (and optional link name) to a :class:`Family`.

    Parameters
    ----------
    family : str or Family
        ``"bernoulli"``, ``"binomial"``, ``"poisson"``, ``"gaussian"``, ``"negativebinomial"``
        (alias ``"nbinom2"``), ``"betabinomial"`` (alias ``"beta_binomial"``) or ``"gamma"``.
    link : str, optional
        Defaults to the family's first link (logit, logit, log, identity, log, logit, inverse).

    Raises
    ------
    ValueError
        For an unknown family, or a link the family does not support.
    """
    if isinstance(family, Family):
        if link is None or get_link(link) == family.link:
            return family
        family = family.name
    key = _ALIASES.get(family.lower(), family.lower()) if isinstance(family, str) else None
    if key not in _FAMILY_CLASSES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)} "
                         f"(or {', '.join(_ALIASES)})")
    cls = _FAMILY_CLASSES[key]
    return cls(None if link is None else get_link(link))
