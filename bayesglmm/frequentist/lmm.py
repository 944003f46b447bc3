"""Gaussian linear mixed models by ML or REML (as lme4's ``lmer``), on the same :class:`Design`.

With V₀ = ZΛΛᵀZᵀ + I (Λ relative to the residual SD σ), β and σ² are profiled out and
the (RE)ML criterion is minimised over θ by L-BFGS-B (see
:func:`bayesglmm.frequentist.working_lmm.working_lmm_deviance`, which PQL uses with weights).
Log-likelihoods include every constant:

    ML:    −½ [ n (log 2πσ̂² + 1) + log|V₀| ],                       σ̂² = rᵀV₀⁻¹r / n
    REML:  −½ [ (n−p)(log 2πσ̂² + 1) + log|V₀| + log|XᵀV₀⁻¹X| ],      σ̂² = rᵀV₀⁻¹r / (n−p)

References
----------
Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear mixed-effects
models using lme4. Journal of Statistical Software 67(1), sec. 3.
"""

from __future__ import annotations

import numpy as np
from ..results import NotApplicableError

from .optimize import DECREMENT_TOL, central_value_and_grad, newton_polish, powell_fallback, safe_inverse, scipy_bounds
from .records import EngineResult, LaplaceState
from .theta import ThetaMap, penalized_system
from .working_lmm import minimize_working_lmm, working_lmm_deviance, working_lmm_objective

__all__ = ["fit_lmm", "lmm_deviance", "check_identifiable"]


def lmm_deviance(design, family, reml: bool = True, full=()):
    """The profiled (RE)ML deviance −2 log L(θ) with every constant, θ relative to σ (β and σ²
    profiled out), as ``lmer(..., devFunOnly = TRUE)``; see :mod:`bayesglmm.frequentist.deviance`.
    ``full``: the blocks whose factor is a full square matrix (:class:`~bayesglmm.frequentist.laplace.ThetaMap`).

    Returns
    -------
    fun, value_and_grad : callable
        θ → deviance, and θ → (deviance, gradient) (central differences where the analytic
        gradient would not fit in memory).
    tmap : ThetaMap
    """
    _check_lmm(family)
    tmap = ThetaMap(design, full)
    X, z, w = design.X, design.y - design.offset, np.ones(design.nobs)
    n, p = X.shape
    const = (n - p if reml else n) * (np.log(2 * np.pi) + 1)

    def fun(th):
        return working_lmm_deviance(X, tmap.ZLambda(th), z, w, True, reml=reml)[0] + const

    fg = working_lmm_objective(tmap, X, z, w, True, reml)
    if fg is None:
        return fun, central_value_and_grad(fun, tmap.lower), tmap

    def value_and_grad(th):
        f, g = fg(th)
        return f + const, g

    return fun, value_and_grad, tmap


def check_identifiable(design) -> None:
    """lmer's ``check.nobs.vs.nRE``: a random term with as many effects as there are observations (every
    group of size 1, for an intercept) cannot be told from the residual — the fit split σ² between them
    arbitrarily (sd = σ exactly), with no flag. Refused, naming the term."""
    for block in design.random:
        q = block.n_levels * block.n_terms
        if q >= design.nobs:
            raise NotApplicableError(
                f"the random term {block.label!r} has {q} effects for {design.nobs} observations: its variance and "
                "the residual variance are not identifiable in a linear mixed model (lmer refuses it too); drop "
                "the term, or give it fewer levels than observations")


def _check_lmm(family):
    if not (family.has_scale and family.canonical):
        raise NotApplicableError(f"methods 'ml' and 'reml' are for Gaussian identity-link models, not "
                         f"{family.name}/{family.link.name}: use 'laplace', 'agq' or 'pql'")


def fit_lmm(design, family, reml: bool = True, tol: float = 1e-12, maxiter: int = 2000):
    """Fit a Gaussian identity-link LMM by REML (default) or ML.

    ``tol`` is L-BFGS-B's relative reduction ``ftol``; ``maxiter`` its iteration limit (a fit
    that reaches it is reported as not converged).

    Returns
    -------
    EngineResult
        As :func:`bayesglmm.frequentist.laplace.fit_laplace`, with ``sigma``.
    """
    _check_lmm(family)
    check_identifiable(design)
    tmap = ThetaMap(design)
    X, z, w = design.X, design.y - design.offset, np.ones(design.nobs)
    n, p = X.shape
    bounds = scipy_bounds(tmap.lower)

    def objective(th):
        return working_lmm_deviance(X, tmap.ZLambda(th), z, w, True, reml=reml)[0]

    res = minimize_working_lmm(tmap, X, z, w, True, reml, tmap.theta0(), bounds,
                               {"ftol": tol, "gtol": 1e-8, "maxiter": maxiter})
    first = res.message
    res, fallback, _ = powell_fallback(objective, res, bounds, maxiter, xtol=1e-10, ftol=1e-14, accept_success=True)
    message = f"L-BFGS-B: {first}{fallback}"
    theta, converged, decrement = res.x, bool(res.success), float("nan")
    fg = working_lmm_objective(tmap, X, z, w, True, reml)
    if converged and fg is not None and tmap.n_theta:
        # as the Laplace fits: finish by Newton steps and count the fit converged only when a Newton step
        # would gain at most DECREMENT_TOL (L-BFGS-B's relative reduction stopped a model whose random
        # intercepts carry a mean of 10⁹ at θ = 10⁻¹·its optimum, "converged")
        theta, _, steps, decrement = newton_polish(fg, theta, np.asarray(tmap.lower, dtype=float), tmap.n_theta)
        message += (f"; {steps} Newton step{'s' * (steps > 1)}" if steps else "") + f"; Newton decrement {decrement:.1e}"
        converged = not (decrement > DECREMENT_TOL or decrement < -DECREMENT_TOL)
    A = tmap.ZLambda(theta)
    _, beta, xtvx, sigma2, fac = working_lmm_deviance(X, A, z, w, True, reml=reml)
    dof = n - p if reml else n
    loglik = -0.5 * (dof * (np.log(2 * np.pi * sigma2) + 1) + fac.logdet
                     + (float(np.linalg.slogdet(xtvx)[1]) if reml else 0.0))
    sigma = float(np.sqrt(sigma2))
    u = fac.solve(A.T @ (z - X @ beta))
    theta_abs = theta * sigma
    state = LaplaceState(u=u / sigma, eta=X @ beta + A @ u + design.offset, loglik_cond=np.nan, logdet=fac.logdet,
                         factor=penalized_system(tmap.ZLambda(theta_abs), w / sigma2), converged=converged)
    return EngineResult(theta=theta_abs, beta=beta, vcov_beta=sigma2 * safe_inverse(xtvx), loglik=float(loglik),
                        state=state, tmap=tmap, converged=converged, sigma=sigma,
                        message=message, n_eval=int(res.nfev), decrement=decrement)
