"""Penalized quasi-likelihood (Breslow & Clayton 1993), as MASS::glmmPQL computes it.

Each iteration forms the working response and weights of the GLM at the current
linear predictor,

    z = η − offset + (y/n − μ) / μ'(η),      w = n μ'(η)² / V(μ),

and fits the working linear mixed model z = Xβ + ZΛu + e, u ~ N(0, I),
e ~ N(0, σ² W⁻¹), by maximum likelihood (``glmmPQL`` calls ``nlme::lme`` with
``method = "ML"``; with REML here the SDs come out 4–10% larger than glmmPQL's). With
``dispersion="fixed"`` σ = 1 (Breslow & Clayton's PQL; ``glmmPQL(...,
control = lmeControl(sigma = 1))``); with ``dispersion="estimate"`` σ is estimated,
which is glmmPQL's default. The new η is Xβ̂ + ZΛû + offset; the loop stops when
Σ(η − η_old)² < 1e-6 Σ η² (glmmPQL's rule) or after ``maxiter`` iterations.

PQL maximises no likelihood: the fit's ``loglik``, ``aic`` and ``bic`` are NaN.

References
----------
Breslow, N. E. and Clayton, D. G. (1993). Approximate inference in generalized linear
mixed models. JASA 88, 9–25.
Venables, W. N. and Ripley, B. D. (2002). Modern Applied Statistics with S, sec. 10.4.
"""

from __future__ import annotations

import numpy as np

from ..results import FitFailedError, NotApplicableError

from .optimize import safe_inverse, scipy_bounds
from .pirls import glm_start, score_weights
from .records import EngineResult, LaplaceState
from .theta import ThetaMap, penalized_system
from .working_lmm import minimize_working_lmm, working_lmm_deviance


def outside_support(family) -> str:
    """Why a likelihood is undefined at an estimate, in the family's words (a non-canonical link
    can take the mean outside its support; a canonical one only overflow can)."""
    if family.canonical:
        return ("the linear predictor overflowed: a covariate on an extreme scale, or a separated or "
                "degenerate response (check the data)")
    return (f"the linear predictor reached values where the mean is outside the family's support under the "
            f"{family.link.name!r} link, e.g. a negative Poisson mean under the identity link; try the canonical link")


__all__ = ["fit_pql", "outside_support"]




def fit_pql(design, family, dispersion: str = "fixed", maxiter: int = 10, tol: float = 1e-6):
    """Fit a GLMM by PQL; see the module docstring.

    Parameters
    ----------
    design : Design
    family : Family
        Bernoulli, binomial or Poisson.
    dispersion : {"fixed", "estimate"}
        σ = 1 (Breslow–Clayton) or estimated (MASS::glmmPQL's default).
    maxiter : int
        Outer iterations (glmmPQL's ``niter``, 10).

    Returns
    -------
    EngineResult
        As :func:`bayesglmm.frequentist.laplace.fit_laplace`, with ``sigma``; ``loglik`` is NaN.
    """
    if dispersion not in ("fixed", "estimate"):
        raise ValueError(f"dispersion must be 'fixed' or 'estimate', got {dispersion!r}")
    if family.has_scale:
        raise NotApplicableError("PQL is for non-Gaussian families; a Gaussian model is an LMM: use method='ml' or 'reml'")
    estimate = dispersion == "estimate"
    tmap = ThetaMap(design)
    X, y = design.X, design.y
    n_trials = 1.0 if design.trials is None else design.trials
    eta = design.offset + X @ glm_start(design, family)
    theta = tmap.theta0()
    bounds = scipy_bounds(tmap.lower)
    converged, n_eval = False, 0
    for it in range(maxiter):
        _, mean, s, w = score_weights(family, eta, design.trials)
        mu = mean / n_trials
        dmu = family.link.inverse_deriv(eta)  # away from 0 (saturated under separation), keeping its sign: the
        dmu = np.where(dmu < 0, np.minimum(dmu, -1e-300), np.maximum(dmu, 1e-300))  # inverse link decreases
        z = eta - design.offset + (y / n_trials - mu) / dmu
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(w))
                and np.all(np.isfinite(family.loglik_obs(y, mu, design.trials)))):
            raise FitFailedError(f"PQL failed at iteration {it + 1}: the working response or weights are not finite "
                                 f"({outside_support(family)})")

        res = minimize_working_lmm(tmap, X, z, w, estimate, False, theta, bounds,
                                   {"ftol": 1e-12, "gtol": 1e-8, "maxiter": 1000})
        theta, n_eval = res.x, n_eval + res.nfev
        A = tmap.ZLambda(theta)
        _, beta, xtvx, sigma2, fac = working_lmm_deviance(X, A, z, w, estimate, reml=False)
        u = fac.solve(A.T @ (w * (z - X @ beta)))
        eta_old, eta = eta, X @ beta + A @ u + design.offset
        if np.sum((eta - eta_old) ** 2) < tol * np.sum(eta**2):
            converged = True
            break
    sigma = float(np.sqrt(sigma2))
    theta_abs = theta * sigma  # absolute scale of the random effects
    A_abs = tmap.ZLambda(theta_abs)
    # û in the absolute parameterisation: b = Λ_rel u = Λ_abs (u / σ); Cov(b | z) = Λ_abs H⁻¹ Λ_absᵀ
    state = LaplaceState(u=u / sigma, eta=eta, loglik_cond=np.nan, logdet=np.nan,
                         factor=penalized_system(A_abs, w / sigma2), converged=converged)
    return EngineResult(theta=theta_abs, beta=beta, vcov_beta=sigma2 * safe_inverse(xtvx), loglik=np.nan,
                        state=state, tmap=tmap, converged=converged, sigma=sigma,
                        message=f"PQL {'converged' if converged else 'stopped'} after {it + 1} iterations",
                        n_eval=int(n_eval))
