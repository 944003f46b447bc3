"""``GLMM.fit(method)`` and the :class:`MLFit` result with the shared tidy tables."""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from ..report import ResultDisplay, criteria_lines
from ..results import (RE_COLUMNS, RESIDUAL, VC_COLUMNS, ConvergenceWarning, FitFailedError, Flag, NotApplicableError,
                       SeparationWarning, check_ci, ci_or_default, summary_table, tidy_frame, wald_fixed_effects)
from ..scaling import scale_design
from .agq import NAGQ_LADDER, settle_nagq
from .laplace import fit_laplace, laplace_deviance, packed
from .pql import fit_pql, outside_support
from .rescale import on_user_scale
from .separation import check_separation

__all__ = ["MLFit", "PQLFit", "fit", "METHODS", "ConvergenceWarning", "SeparationWarning", "check_separation",
           "default_nagq", "fit_agq_settled", "NAGQ_FIT_TOL"]

METHODS = ("laplace", "agq", "pql", "gee", "ml", "reml")
#: a dispersion family's θ (or shape) above which a fit is on its boundary (no overdispersion): a
#: negative binomial with θ = 10⁷ has a variance within 10⁻⁶ of the Poisson's for counts to 10
DISPERSION_LIMIT = 1e7
SINGULAR_TOL = 1e-4


def default_nagq(design) -> int:
    """AGQ's first rule, nodes per dimension: 25 for one random effect, 11 for two, 7 for three, 5 above.

    ``fit("agq")`` without ``nagq`` fits at this rule and climbs :data:`~bayesglmm.frequentist.agq.NAGQ_LADDER`
    from it until the log-likelihood settles (:func:`fit_agq_settled`). The product rule costs
    nagq^k conditional log-likelihoods per group (k random effects in the block): 25, 121, 343,
    625 nodes. lme4's ``glmer`` allows at most 25 (one random effect); GLMMadaptive uses 11 by
    default (any k).
    """
    k = design.random[0].n_terms if len(design.random) == 1 else 1
    return {1: 25, 2: 11, 3: 7}.get(k, 5)


#: the change of AGQ's log-likelihood at the estimates between successive rules below which
#: :func:`fit_agq_settled` stops: the precision the fit allows itself anyway (it counts as
#: converged with at most 1e-6 of log-likelihood left to gain, ``optimize.DECREMENT_TOL``), so the
#: quadrature adds no larger error. ``marginalize=True`` allows 1e-4 (a posterior's Monte Carlo
#: error is larger); a reported log-likelihood, compared to R's to 1e-6 and differenced in LRTs, not.
NAGQ_FIT_TOL = 1e-6


def fit_agq_settled(design, family, nagq: int, nagq_tol: float = NAGQ_FIT_TOL, **options):
    """Fit by AGQ at ``nagq`` nodes per dimension, then at more until the log-likelihood settles.

    At the estimates, the log-likelihood of the next rules of
    :data:`~bayesglmm.frequentist.agq.NAGQ_LADDER` (for the block's number of terms) is evaluated,
    up to the first rule within ``nagq_tol`` of the next (:func:`~bayesglmm.frequentist.agq.settle_nagq`);
    if that is not the rule of the fit, the model is refitted at it, from the estimates, and the
    check repeated there. At the ladder's last rule the change is from the rule before it.

    Parameters
    ----------
    design, family
        The model, in the engines' parametrization (:mod:`bayesglmm.scaling`).
    nagq : int
        The first rule (:func:`default_nagq`).
    nagq_tol : float
        The change below which a rule is taken (:data:`NAGQ_FIT_TOL`).
    **options
        The optimiser's options, for every fit (:func:`~bayesglmm.frequentist.laplace.fit_laplace`:
        ``tol``, ``maxiter``).

    Returns
    -------
    raw : EngineResult
        The fit at the rule taken.
    nagq : int
        Its nodes per dimension.
    change : float or None
        Its log-likelihood's change to the next rule at the estimates (at the last rule: from the
        one before); ``change < nagq_tol`` when it settled. None when the block has no ladder (5 or
        more terms): the fit at ``nagq``, unchecked.

    Notes
    -----
    A rule's log-likelihood at the estimates of a fit with fewer nodes differs from its maximum by
    a second-order term in the shift of the estimates, which is small (hard binary data, SD 5:
    25 → 31 nodes moved it by 6.808e-3 at the 25-node estimates and 6.812e-3 between the two
    fits; the 100-node log-likelihood at the 25-node estimates lies 1.9e-5 below its maximum): the
    evaluations find the rule, and one refit is usually all it costs: on ohio and the hard data,
    two fits where refitting at every rule took five or six, to the same rule and log-likelihood
    (docs/frequentist.md). With the first rule settled, the check costs one evaluation of the
    next rule (about 2 ms on the bundled data).

    In R: ``glmer(..., nAGQ = 25)`` at most; GLMMadaptive's ``mixed_model(..., nAGQ = 11)``;
    neither checks the rule.
    """
    raw = fit_laplace(design, family, nagq=nagq, **options)
    ladder = NAGQ_LADDER.get(design.random[0].n_terms, ())
    if nagq not in ladder:  # a block with no ladder (5 or more terms), or a first rule off it: unchecked
        return raw, nagq, None
    while True:
        i = ladder.index(nagq)
        candidates = ladder[i:] if i + 1 < len(ladder) else ladder[i - 1:]  # at the last rule: from the one before
        x = packed(raw)

        def loglik(q, x=x):
            return -0.5 * laplace_deviance(design, family, q)[0](x)

        q, change = settle_nagq(loglik, candidates, nagq_tol, known={nagq: raw.loglik})
        if q <= nagq:
            return raw, nagq, change
        refit = fit_laplace(design, family, nagq=q, start=x, **options)
        if not np.isfinite(refit.loglik):  # keep the last finite fit; the change says it did not settle
            return raw, nagq, change
        raw, nagq = refit, q


def singular_boundaries(design, factors, tol: float = SINGULAR_TOL) -> list[str]:
    """Name each boundary a fit sits on: an SD at 0, or a correlation at ±1.

    A block's relative factor L (Σ ∝ LLᵀ) is singular when a diagonal entry L[t, t] is
    (near) 0, as lme4's ``isSingular`` checks. If the whole row t is near 0, term t's SD is
    0; otherwise term t is a linear combination of the earlier terms: with one of them, their
    correlation is ±1 (named for the earlier term it is most correlated with); with several, no
    single correlation is ±1 and the message names them. Judged on the internal factors, where a
    correlated block's intercept is at the covariates' means: the signs and names hold on the
    user's scale too (a rank-deficient covariance stays rank-deficient under the map back).
    """
    out = []
    for block, L in zip(design.random, factors):
        S = L @ L.T
        sd = np.sqrt(np.clip(np.diag(S), 0, None))
        for t in range(block.n_terms):
            if abs(L[t, t]) >= tol:
                continue
            if sd[t] < tol:
                out.append(f"the SD of {block.terms[t]!r} in group {block.group!r} is estimated at 0")
                continue
            earlier = [j for j in range(t) if sd[j] >= tol]
            if not earlier:  # only terms whose SD is 0 come before it: their own messages say so
                continue
            corr = [S[t, j] / (sd[t] * sd[j]) for j in earlier]
            j = earlier[int(np.argmax(np.abs(corr)))]
            if max(np.abs(corr)) >= 0.999:
                sign = "+1" if S[t, j] > 0 else "-1"
                out.append(f"the correlation of {block.terms[j]!r} and {block.terms[t]!r} in group "
                           f"{block.group!r} is estimated at {sign} (the boundary)")
            else:  # a combination of several earlier terms: no single correlation is at ±1
                names = ", ".join(repr(block.terms[i]) for i in earlier)
                out.append(f"{block.terms[t]!r} in group {block.group!r} is a linear combination of {names}: "
                           "the random effects' correlation matrix is singular")
    return out


class MLFit(ResultDisplay):
    """A maximum-likelihood fit of a GLMM.

    Attributes
    ----------
    model : GLMM
    method : str
    beta : ndarray, shape (p,)
    vcov : ndarray, shape (p, p)
        Covariance of β̂ from the Hessian of the deviance in (θ, β), as glmer computes it.
    theta : ndarray
        Packed lower-triangular relative covariance factors (lme4's θ).
    loglik : float
        The log-likelihood with every normalising constant. A :class:`PQLFit` has no
        ``loglik``, ``aic`` or ``bic`` attribute: PQL maximises no likelihood.
    aic, bic : float
    converged : bool
        The optimiser succeeded, the conditional modes converged and (Laplace/AGQ) the Newton
        decrement at the estimates is at most ``laplace.DECREMENT_TOL``.
    decrement : float
        Laplace/AGQ: the Newton decrement gᵀH⁻¹g of the deviance at the estimates, four times the
        log-likelihood still to gain (NaN for the other methods).
    singular : bool
        Some random-effect SD is (near) zero, or a correlation is ±1.
    boundary : list of str
        Which boundary: each SD at 0 and each correlation at ±1, named.
    flags : list of Flag
        Structured findings (``separation``, ``singular``, ``not_converged``, ``nan_se``;
        ``quadrature`` when ``fit("agq")`` chose its nodes and the log-likelihood did not settle).
    nagq : int
        Nodes per dimension of the quadrature (``"agq"``; 1 for the other methods).
    nagq_change : float or None
        ``fit("agq")`` without ``nagq``: the log-likelihood's change at the estimates from the rule
        used to the next one on the ladder (from the one before, at its last rule); the rule
        settled when it is below :data:`NAGQ_FIT_TOL`. None when the rule was given, or not checked.
    seconds : float
        Wall time of the fit.
    """

    def __init__(self, model, method, raw, seconds, nagq=1, dispersion=None, scaling=None, nagq_change=None):
        self.model, self.method, self.seconds, self.nagq = model, method, seconds, nagq
        self.nagq_change = nagq_change
        #: the residual SD σ (LMM; PQL's estimated dispersion, None when fixed at 1), or a dispersion
        #: family's θ or shape (glmmTMB's ``sigma()`` for nbinom2 and betabinomial; 1/√shape for Gamma)
        self.dispersion = raw.sigma if dispersion == "estimate" else raw.dispersion
        self.beta, self.vcov, self.theta = raw.beta, raw.vcov_beta, raw.theta
        #: covariance of (θ, β) from the Hessian (Laplace/AGQ only; else None)
        self.vcov_full = raw.vcov_full
        self.converged, self.message, self.n_eval = raw.converged, raw.message, raw.n_eval
        self.decrement = raw.decrement
        self._state, self._tmap = raw.state, raw.tmap
        # the engine's result in its internal parametrization (bayesglmm.scaling) and the map back:
        # the singular check and the profiles are made there, where they do not depend on units
        self._internal, self._scaling = raw.internal or raw, scaling
        self._profiles = {}
        #: BLAS threads of the fit and of its profiles (``fit(..., blas_threads=)``)
        self.blas_threads = 1
        if self.has_likelihood:
            self.loglik = float(raw.loglik)
            k = len(self.theta) + len(self.beta) + (self.dispersion is not None)
            self.aic = -2 * self.loglik + 2 * k
            self.bic = -2 * self.loglik + np.log(model.design.nobs) * k
        self.boundary = singular_boundaries(model.design, self._tmap.factors(self._internal.theta))
        family = model.family
        if family.has_dispersion and self.dispersion is not None and self.dispersion > DISPERSION_LIMIT:
            self.boundary.append(f"the {family.dispersion_name} of the {family.name} family is estimated at "
                                 f"{self.dispersion:.3g}, its limit of no extra variation (the "
                                 f"{'Poisson' if not family.counts_successes else 'binomial'} model"
                                 + (" with these random effects)" if family.response_kind == "count" else
                                    ": a noiseless response)"))
        self.singular = bool(self.boundary)
        #: structured findings (:class:`~bayesglmm.results.Flag`): separation, singular, not_converged, nan_se
        self.flags: list[Flag] = []

    #: ML/REML/Laplace/AGQ fits maximise a likelihood: they have ``loglik``, ``aic``, ``bic``
    has_likelihood = True
    #: the first line of each method's printed summary
    TITLES = {
        "laplace": "Generalized linear mixed model fit by maximum likelihood (Laplace approximation)",
        "agq": "Generalized linear mixed model fit by maximum likelihood (adaptive Gauss-Hermite quadrature)",
        "ml": "Linear mixed model fit by maximum likelihood",
        "reml": "Linear mixed model fit by REML",
        "pql": "Generalized linear mixed model fit by penalized quasi-likelihood (PQL: no likelihood)",
    }

    def __repr__(self):
        ll = f"loglik={self.loglik:.4f}" if self.has_likelihood else "no likelihood (PQL)"
        return (f"<{type(self).__name__} {self.method}: {self.model.formula!r}, {ll}, "
                f"converged={self.converged}, singular={self.singular}>")

    def _summary_title(self) -> str:
        if self.model.family.has_scale and self.method in ("laplace", "agq"):
            # a Gaussian identity-link GLMM is an LMM: fitted exactly, with no quadrature (as glmer hands
            # gaussian models to lmer), whatever nagq was asked for
            return f"Linear mixed model fit by maximum likelihood (method={self.method!r}: exact for a Gaussian model)"
        return self.TITLES.get(self.method, self.method) + (f", nAGQ = {self.nagq}" if self.method == "agq" else "")

    def _summary_criteria(self) -> list[str]:
        if not self.has_likelihood or not np.isfinite(self.loglik):
            return []
        return criteria_lines(self.aic, self.bic, self.loglik, "REML criterion" if self.method == "reml" else "deviance")

    @property
    def can_profile(self) -> bool:
        """Whether :meth:`variance_components` gives profile-likelihood intervals (``profile=True``):
        every method that maximised a likelihood, not PQL."""
        return self.has_likelihood and self.method != "pql"

    def fixed_effects(self, ci: float | None = None) -> pd.DataFrame:
        """β̂ with Hessian-based standard errors and Wald intervals (``ci=None``: 0.95)."""
        return wald_fixed_effects(self.model.design.fixed_names, self.beta, self.vcov, self.method, ci)

    def covariances(self) -> list[np.ndarray]:
        """Σ = L Lᵀ of each random block (the scale is 1 for these families)."""
        return [L @ L.T for L in self._tmap.factors(self.theta)]

    def profile(self, level: float = 0.95) -> dict:
        """Profile-likelihood intervals of the SDs, ``{(group, term): (low, high)}``, and of the
        correlations, ``{(group, term, term2): (low, high)}`` (cached).

        See :mod:`bayesglmm.frequentist.profile`. PQL has no likelihood and raises ``ValueError``.
        """
        check_ci(level, "level")
        if level not in self._profiles:
            from .profile import profile_intervals

            with blas_limit(self.blas_threads):
                self._profiles[level] = {tuple(row[:-2]): tuple(row[-2:]) for row in profile_intervals(self, level)}
        return self._profiles[level]

    def variance_components(self, ci: float | None = None, profile: bool = False) -> pd.DataFrame:
        """Random-effect SDs and correlations.

        Parameters
        ----------
        ci : float, optional
            Interval probability (as every result's ``variance_components(ci=...)``; None: 0.95,
            :data:`~bayesglmm.results.DEFAULT_CI`).
        profile : bool
            Add profile-likelihood intervals for the SDs and the correlations at ``ci`` (as
            lme4's ``confint(fit, method = "profile")``, its ``.sig`` and ``.cor`` rows; each costs
            a few dozen constrained refits, so it is off by default). A correlation's interval is
            on [−1, 1], an end at ±1 when the cut-off is not reached there. Without it the
            interval columns are NaN. PQL has no likelihood to profile: ``profile=True`` raises
            ``ValueError`` (see :attr:`can_profile`).
        """
        level = ci_or_default(ci)
        if profile and not self.can_profile:
            raise ValueError("PQL maximises no likelihood: it has no profile-likelihood intervals")
        bounds = self.profile(level) if profile else {}
        rows = []
        for block, S in zip(self.model.design.random, self.covariances()):
            sd = np.sqrt(np.diag(S))
            for t, term in enumerate(block.terms):
                low, high = bounds.get((block.group, term), (np.nan, np.nan))
                rows.append({"group": block.group, "term": term, "term2": None, "kind": "sd",
                             "estimate": sd[t], "std_error": np.nan, "conf_low": low,
                             "conf_high": high, "method": self.method})
            if block.has_correlation:
                for i in range(block.n_terms):
                    for j in range(i + 1, block.n_terms):
                        r = S[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                        low, high = bounds.get((block.group, block.terms[i], block.terms[j]), (np.nan, np.nan))
                        rows.append({"group": block.group, "term": block.terms[i], "term2": block.terms[j],
                                     "kind": "corr", "estimate": r, "std_error": np.nan, "conf_low": low,
                                     "conf_high": high, "method": self.method})
        family = self.model.family
        if family.has_dispersion and self.dispersion is not None:
            low, high = bounds.get((RESIDUAL, family.dispersion_name), (np.nan, np.nan))
            rows.append({"group": RESIDUAL, "term": family.dispersion_name, "term2": None, "kind": "dispersion",
                         "estimate": self.dispersion, "std_error": self.dispersion_std_error(), "conf_low": low,
                         "conf_high": high, "method": self.method})
        elif self.dispersion is not None:
            low, high = bounds.get((RESIDUAL, RESIDUAL), (np.nan, np.nan))
            rows.append({"group": RESIDUAL, "term": RESIDUAL, "term2": None, "kind": "sd",
                         "estimate": self.dispersion, "std_error": np.nan, "conf_low": low,
                         "conf_high": high, "method": self.method})
        return tidy_frame(rows, VC_COLUMNS)

    def dispersion_std_error(self) -> float:
        """A dispersion family's θ or shape: its standard error by the delta method from that of
        log φ (the Hessian's, as glmmTMB's ``vcov(full = TRUE)`` of its log-dispersion); NaN
        otherwise."""
        V = self.vcov_full
        if not self.model.family.has_dispersion or V is None or self.dispersion is None:
            return float("nan")
        var = float(V[-1, -1])
        return float(self.dispersion * np.sqrt(var)) if var >= 0 else float("nan")

    def summary(self, ci: float | None = None, profile: bool = False) -> pd.DataFrame:
        """Fixed effects and variance components in one table (``parameter``, ``kind`` first),
        as :meth:`Posterior.summary <bayesglmm.bayes.posterior.Posterior.summary>`."""
        return summary_table(self.fixed_effects(ci), self.variance_components(ci, profile=profile))

    def blups(self) -> list[np.ndarray]:
        """Conditional modes b̂ of each random block, arrays of shape (n_levels, n_terms)."""
        b = self._tmap.Lambda(self.theta) @ self._state.u
        out, pos = [], 0
        for block in self.model.design.random:
            size = block.n_levels * block.n_terms
            out.append(b[pos:pos + size].reshape(block.n_levels, block.n_terms))
            pos += size
        return out

    def predict(self, new_data=None, kind: str = "mean", random_effects: bool = True,
                allow_new_levels: bool = True, ci: float | None = None) -> pd.DataFrame:
        """Predictions at the estimates with standard errors and Wald intervals, as glmmTMB's
        ``predict(fit, newdata, se.fit = TRUE)``: a DataFrame with ``estimate``, ``std_error``,
        ``conf_low``, ``conf_high``, one row per row of ``new_data`` (its index kept).

        Parameters
        ----------
        new_data : pandas.DataFrame, optional
            Rows to predict (the fitting data when None).
        kind : {"mean", "link"}
            The mean (a probability for Bernoulli/binomial: per trial) or the linear predictor η.
        random_effects : bool
            Include the conditional modes b̂ (R: ``re.form = NULL``); False gives the
            population-level prediction (``re.form = NA``).
        allow_new_levels : bool
            A group level not seen in fitting gets b = 0; False makes it an error.
        ci : float, optional
            Interval probability (None: 0.95, :data:`~bayesglmm.results.DEFAULT_CI`).

        Notes
        -----
        The standard error of η̂ (:mod:`bayesglmm.frequentist.prediction` has the derivation):

        - ``random_effects=False``: √(xᵀ V_β x), V_β the covariance of :meth:`fixed_effects` (``vcov``).
        - ``random_effects=True``: the joint uncertainty of β̂ and the conditional modes, and of θ̂ through
          the modes, as TMB's ``sdreport`` in glmmTMB: Var η̂ = aᵀH⁻¹a + gᵀVg, H = ΛᵀZᵀWZΛ + I, V the
          covariance of (θ̂, β̂) and g the derivative of η̂ in (θ, β), the modes moving with them. PQL has
          no likelihood for θ: its SEs take θ as known (the working LMM's joint (β, b) covariance).
          A level not seen in fitting gets b = 0 with the random effect's variance xrᵀΣxr added: wider
          than the population-level SE, as glmmTMB's.

        ``kind="mean"``: the interval's end points are g⁻¹(η̂ ± z·SE); ``std_error`` is the delta
        method's |dμ/dη|·SE(η̂), glmmTMB's ``se.fit`` with ``type = "response"``.

        The SEs agree with glmmTMB 1.1.5's to within 2·10⁻⁶ relative on both scales, population level and
        conditional, fitting rows and new levels, on cbpp (binomial, Laplace), sleepstudy (ML; REML
        conditional) and a Poisson with an offset (docs/frequentist.md, "Predictions"). An LMM's
        population-level SEs use lmer's ``vcov`` (θ known), which glmmTMB's ML ``vcov`` exceeds on
        unbalanced designs (:mod:`~bayesglmm.frequentist.prediction`).

        R: ``predict(fit, newdata, se.fit = TRUE, re.form = NA | NULL, type = "link" | "response",
        allow.new.levels = TRUE)`` (glmmTMB).
        """
        from ..predict import check_kind, new_data_matrices, wald_prediction
        from .prediction import conditional_variance, population_variance

        check_kind(kind)
        level = ci_or_default(ci)
        design = self.model.design
        rows = new_data_matrices(design, new_data, allow_new_levels, random_effects)
        eta = rows.eta(self.beta, self.blups() if random_effects else None)
        if random_effects:
            scaling = self._scaling
            with blas_limit(self.blas_threads):
                var = scaling.y_scale**2 * conditional_variance(self._mode_system(), scaling.new_data(rows))
        else:
            var = population_variance(rows.X, self.vcov)
        se = np.sqrt(np.where(var >= 0, var, np.nan))
        return wald_prediction(self.model.family, eta, se, kind, level,
                               index=None if new_data is None else new_data.index)

    def _mode_system(self):
        """The conditional modes and curvature that conditional predictions' SEs need
        (:func:`~bayesglmm.frequentist.prediction.mode_system`), built on first use and kept."""
        if getattr(self, "_modes", None) is None:
            from .prediction import mode_system

            self._modes = mode_system(self)
        return self._modes

    def marginal_fixed_effects(self, draws: int = 500, random_seed=0, ci: float | None = None) -> pd.DataFrame:
        """Population-averaged coefficients implied by the fit (see :mod:`bayesglmm.marginal`).

        Standard errors by drawing (θ, β) from N((θ̂, β̂), H⁻¹) ``draws`` times
        (GLMMadaptive's ``marginal_coefs(std_errors = TRUE)``); NaN where the fit has no
        joint covariance (PQL, LMM). The ``method`` column reads e.g. ``"laplace (marginal)"``.
        """
        from ..marginal import marginal_coefficient_draws, marginal_coefficients

        design, family = self.model.design, self.model.family
        if family.link.is_identity:  # E_b[xβ + zb] = xβ: the marginal coefficients are β
            return wald_fixed_effects(design.fixed_names, self.beta, self.vcov, f"{self.method} (marginal)", ci)
        # on the internal design (bayesglmm.scaling), where neither the coefficients nor the random
        # effects' variances lose digits to a covariate's origin (Σ of (age | id) with age + 10⁸ cannot
        # hold the variance at the data's ages), mapped back by β = A β̃ (a non-identity link: s = 1)
        internal, scaling = self._internal, self._scaling
        inner = scaling.design

        def covariances(theta):
            return [L @ L.T for L in internal.tmap.factors(theta)]

        est = scaling.beta(marginal_coefficients(inner, family, internal.beta, covariances(internal.theta)))
        vcov = np.full((len(est), len(est)), np.nan)
        if internal.vcov_full is not None and np.all(np.isfinite(internal.vcov_full)):
            # (θ̃, β̃) drawn from their normal approximation in the internal parametrization too
            rng = np.random.default_rng(random_seed)
            x = np.concatenate([internal.theta, internal.beta])
            V = internal.vcov_full[:len(x), :len(x)]  # a dispersion's log φ, last, does not enter
            sims = rng.multivariate_normal(x, (V + V.T) / 2, size=draws, check_valid="ignore")
            nt = len(internal.theta)
            draws_t = marginal_coefficient_draws(inner, family, sims[:, nt:], [covariances(s[:nt]) for s in sims])
            J = scaling.beta_jacobian
            vcov = J @ np.atleast_2d(np.cov(draws_t, rowvar=False)) @ J.T
        return wald_fixed_effects(design.fixed_names, est, np.atleast_2d(vcov), f"{self.method} (marginal)", ci)

    def random_effects(self, ci: float | None = None) -> pd.DataFrame:
        """Conditional modes b̂ = Λû (BLUPs) with conditional SEs sqrt(diag(Λ H⁻¹ Λᵀ))."""
        b = np.concatenate([x.ravel() for x in self.blups()])
        blocks = self.model.design.random
        inv = self._state.factor.inverse_blocks([(blk.n_levels, blk.n_terms) for blk in blocks])
        # level j's block of Λ H⁻¹ Λᵀ is L (H⁻¹)ⱼⱼ Lᵀ: only H⁻¹'s diagonal blocks are needed
        var = [np.einsum("ab,gbc,dc->gad", L, Hj, L).diagonal(axis1=1, axis2=2).ravel()
               for L, Hj in zip(self._tmap.factors(self.theta), inv)]
        se = np.sqrt(np.clip(np.concatenate(var), 0, None)) if var else np.zeros(0)
        z = stats.norm.ppf(0.5 + ci_or_default(ci) / 2)
        rows, pos = [], 0
        for block in self.model.design.random:
            for level in block.levels:
                for term in block.terms:
                    rows.append({"group": block.group, "level": level, "term": term, "estimate": b[pos],
                                 "std_error": se[pos], "conf_low": b[pos] - z * se[pos],
                                 "conf_high": b[pos] + z * se[pos], "method": self.method})
                    pos += 1
        return tidy_frame(rows, RE_COLUMNS)


_OPTIONS = {"laplace": ("tol", "maxiter"), "agq": ("tol", "maxiter"), "pql": ("tol", "maxiter"),
            "ml": ("tol", "maxiter"), "reml": ("tol", "maxiter"), "gee": ("correlation",)}
#: the most nodes per dimension ``nagq`` may ask for, and the last rule of the automatic choice for a
#: scalar random effect (:data:`~bayesglmm.frequentist.agq.NAGQ_LADDER`); numpy's Gauss–Hermite
#: weights underflow to 0 from about 400 nodes
MAX_NAGQ = 201


def check_options(method: str, nagq, options: dict) -> None:
    """Clear errors for options a method does not take or values it cannot use."""
    unknown = [k for k in options if k not in _OPTIONS[method]]
    if unknown:
        raise TypeError(f"method {method!r} takes the options {', '.join(_OPTIONS[method])}; got {', '.join(unknown)}")
    if nagq is not None and (isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer))
                             or not 1 <= nagq <= MAX_NAGQ):
        raise ValueError(f"nagq must be an integer from 1 to {MAX_NAGQ} (nodes per dimension; 25 is lme4's "
                         f"usual choice), got {nagq!r}")
    if "maxiter" in options:
        m = options["maxiter"]
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"maxiter must be a positive integer, got {m!r}")
    if "tol" in options:
        t = options["tol"]
        if isinstance(t, bool) or not isinstance(t, (int, float, np.floating)) or not 0 < t < 1:
            raise ValueError(f"tol must be a number in (0, 1), got {t!r}")


class PQLFit(MLFit):
    """A PQL fit (Breslow & Clayton 1993): the tables of :class:`MLFit`, but no likelihood.

    PQL iterates a working linear mixed model; it maximises no likelihood, so it has no
    ``loglik``, ``aic``, ``bic`` and no profile intervals, and its SDs are biased towards 0
    for binary data and small counts.
    """

    has_likelihood = False


def blas_limit(threads: int | None):
    """A context that runs BLAS (OpenBLAS/MKL, through threadpoolctl) on ``threads`` threads;
    None leaves it alone. The engines' dense algebra is small blocks and a q₂ × q₂ Cholesky:
    one thread is as fast when the machine is quiet and faster when other processes (NUTS
    chains, a second job) compete for the cores (docs/performance.md, "Measurements behind the
    design")."""
    from contextlib import nullcontext

    if threads is None:
        return nullcontext()
    return blas_controller().limit(limits=int(threads), user_api="blas")


@functools.cache
def blas_controller():
    """threadpoolctl's controller of the BLAS libraries this process has loaded, found once:
    finding them reads the process's memory map (a quarter of a small LMM fit's time);
    the libraries NumPy and SciPy load are there from the first import of bayesglmm on."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _check_blas_threads(threads) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise ValueError(f"blas_threads must be None or a positive integer, got {threads!r}")


def fit(model, method: str = "laplace", nagq: int | None = None, dispersion: str | None = None,
        blas_threads: int | None = 1, **options):
    """Fit ``model`` by a frequentist method; see :meth:`bayesglmm.GLMM.fit`."""
    _check_blas_threads(blas_threads)
    with blas_limit(blas_threads):
        result = _fit(model, method, nagq, dispersion, **options)
    result.blas_threads = blas_threads
    return result


def _fit(model, method: str, nagq, dispersion, **options):
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    if not model.design.random:
        raise NotApplicableError("the model has no random effects: fit it as a GLM")
    if method != "agq" and nagq is not None:
        raise ValueError(f"nagq applies to method='agq', not {method!r}")
    if method != "pql" and dispersion is not None:
        raise ValueError(f"dispersion applies to method='pql', not {method!r}")
    check_options(method, nagq, options)
    if method in ("pql", "gee") and model.family.quasi_undefined:
        raise NotApplicableError(f"method {method!r}: {model.family.quasi_undefined}")
    if method == "gee":
        from .gee import fit_gee

        result = fit_gee(model, **options)
        for term in check_separation(model.design, model.family):
            result.flags.append(Flag("separation", term))
        return result
    t0 = time.perf_counter()
    change = None  # fit_agq_settled's last change between rules
    scaling = scale_design(model.design, model.family)
    design = scaling.design  # the engines fit the internal parametrization (bayesglmm.scaling)
    reml = False
    if model.family.has_scale and method in ("laplace", "agq", "pql"):
        # A Gaussian identity-link GLMM is an LMM: the Laplace approximation (and any
        # quadrature rule) is exact and PQL's working model is the model itself, so all
        # three are its ML fit — as glmer() hands a gaussian family to lmer().
        if not model.family.link.is_identity:
            raise NotApplicableError(f"Gaussian models with a {model.family.link.name!r} link are not supported by "
                             f"the frequentist engines (only identity); use model.sample()")
        from .lmm import fit_lmm

        raw = fit_lmm(design, model.family, reml=False, **options)
        dispersion = "estimate"
    elif method in ("ml", "reml"):
        from .lmm import fit_lmm

        reml = method == "reml"
        raw = fit_lmm(design, model.family, reml=reml, **options)
        dispersion = "estimate"  # σ is a parameter: a Residual row, and one more for AIC/BIC
    elif method == "pql" and model.family.has_dispersion:
        # the Gamma: its 1/shape is the working model's residual variance (glmmPQL estimates it always)
        if dispersion == "fixed":
            raise ValueError(f"dispersion='fixed' would fix the {model.family.name} family's {model.family.dispersion_name} "
                             "at 1: PQL estimates it (dispersion='estimate', the default for this family)")
        raw = fit_pql(design, model.family.with_dispersion(1.0), dispersion="estimate", **options)
        raw = replace(raw, dispersion=1.0 / raw.sigma**2, sigma=None)
        dispersion = None
    elif method == "pql":
        dispersion = "fixed" if dispersion is None else dispersion
        raw = fit_pql(design, model.family, dispersion=dispersion, **options)
    elif method == "laplace" or nagq is not None:
        nagq = 1 if method == "laplace" else nagq
        raw = fit_laplace(design, model.family, nagq=nagq, **options)
    else:  # AGQ choosing its rule: the default, then more nodes until the log-likelihood settles
        raw, nagq, change = fit_agq_settled(design, model.family, default_nagq(model.design), **options)
    if method != "pql" and not np.isfinite(raw.loglik):
        raise FitFailedError(f"{method} failed: the log-likelihood is not finite at the estimates "
                             f"({outside_support(model.family)})")
    raw = on_user_scale(raw, scaling, reml=reml)
    cls = PQLFit if method == "pql" and not model.family.has_scale else MLFit
    result = cls(model, method, raw, time.perf_counter() - t0, nagq=nagq or 1, dispersion=dispersion,
                 scaling=scaling, nagq_change=change)
    add_fit_flags(result, method, stacklevel=4)  # warn → add_fit_flags → _fit → fit → GLMM.fit → the user
    if change is not None and not change < NAGQ_FIT_TOL:
        result.flags.append(Flag("quadrature", _unsettled_message(model.design, result.nagq, change)))
        warnings.warn(result.flags[-1].message, ConvergenceWarning, stacklevel=4)
    return result


def _unsettled_message(design, nagq: int, change: float) -> str:
    """What a ``quadrature`` flag of ``fit("agq")`` says: how far the rule is from settling, and what to do."""
    k = design.random[0].n_terms
    ladder = NAGQ_LADDER[k]
    block = "one random effect" if k == 1 else f"a block of {k} terms"
    if nagq == ladder[-1]:
        pair = f"between {ladder[-2]} and {nagq} nodes per dimension, the most fit('agq') tries for {block}"
    else:  # a refit at the next rule failed
        pair = f"from {nagq} nodes per dimension to {min(q for q in ladder if q > nagq)}, where the fit failed"
    text = (f"the adaptive quadrature did not settle: the log-likelihood at the estimates moves by {change:.2g} "
            f"{pair}, so the fit carries an error of about that size")
    if nagq < MAX_NAGQ and (nagq + 2) ** k <= 100_000:
        cost = f"up to {MAX_NAGQ}" if k == 1 else f"the product rule costs nagq^{k} nodes a group"
        return text + (f"; give a larger nagq= explicitly ({cost}), or compare with method='laplace' and with "
                       "model.sample()")
    return text + ("; that many nodes are the limit: with an SD this large and so few records a group the "
                   "likelihood is hard to integrate, check the SD's profile (variance_components(profile=True)) "
                   "or fit the Bayesian model (model.sample())")


def add_fit_flags(result, method: str, stacklevel: int = 3) -> None:
    """Set ``result.flags`` and warn once for each: not converged, separation, NaN SEs, singular."""
    model = result.model
    flags = result.flags
    if not result.converged:
        flags.append(Flag("not_converged", f"{method} fit did not converge: {result.message}"))
        warnings.warn(flags[-1].message, ConvergenceWarning, stacklevel=stacklevel + 1)
    separated = check_separation(model.design, model.family, stacklevel=stacklevel + 1)
    for term in separated:
        flags.append(Flag("separation", term))
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(np.asarray(result.vcov, dtype=float)))
    listed = " ".join(separated)  # a separated term has no SE: its separation flag says so already
    bad = [t for t, v in zip(model.design.fixed_names, se) if not np.isfinite(v) and repr(t) not in listed]
    if bad:
        flags.append(Flag("nan_se", "the Hessian is not invertible or not finite at the estimates: no standard "
                                    f"errors for {', '.join(map(repr, bad))}"))
        warnings.warn(flags[-1].message, ConvergenceWarning, stacklevel=stacklevel + 1)
    for where in getattr(result, "boundary", []):
        flags.append(Flag("singular", where))
    if getattr(result, "boundary", None):
        warnings.warn("singular fit: " + "; ".join(result.boundary), ConvergenceWarning, stacklevel=stacklevel + 1)
