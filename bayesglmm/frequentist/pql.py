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

from .optimize import minimize_with_restart, safe_inverse
from .pirls import glm_start, ridge_solve, score_weights
from .records import EngineResult, LaplaceState
from .theta import ThetaMap, penalized_system


def outside_support(family) -> str:
    """Why a likelihood is undefined at an estimate, in the family's words (a non-canonical link
    can take the mean outside its support; a canonical one only overflow can)."""
    if family.canonical:
        return ("the linear predictor overflowed: a covariate on an extreme scale, or a separated or "
                "degenerate response (check the data)")
    return (f"the linear predictor reached values where the mean is outside the family's support under the "
            f"{family.link.name!r} link, e.g. a negative Poisson mean under the identity link; try the canonical link")


__all__ = ["fit_pql", "outside_support", "working_lmm_deviance", "working_lmm_objective", "minimize_working_lmm"]


def working_lmm_deviance(X, A, z, w, estimate_dispersion: bool, reml: bool = True, parts: bool = False):
    """−2 × (RE)ML log-likelihood (up to a constant) of z = Xβ + A u + e, e ~ N(0, σ² W⁻¹).

    With σ = 1 fixed, ``A`` holds absolute scales; with σ estimated, A is relative to σ
    and σ² is profiled out. Uses V₀ = A Aᵀ + W⁻¹ and Woodbury with H = I + AᵀWA.

    Returns
    -------
    dev : float
    beta : ndarray
    xtvx : ndarray
        Xᵀ V₀⁻¹ X.
    sigma2 : float
    factor : Factor of H
    parts : dict, with ``parts=True``
        ``r`` = z − Xβ̂, ``v`` = V₀⁻¹r, ``u_hat`` = H⁻¹AᵀWr, ``B`` = H⁻¹AᵀWX, ``VX`` = V₀⁻¹X,
        ``quad`` = rᵀV₀⁻¹r — what the θ-gradient reuses.
    """
    n, p = X.shape
    fac = penalized_system(A, w)
    WX = w[:, None] * X
    B = fac.solve(np.asarray(A.T @ WX))  # H⁻¹AᵀWX
    VX = WX - w[:, None] * (A @ B)  # V₀⁻¹X by Woodbury
    Vz = w * z - w * (A @ fac.solve(A.T @ (w * z)))
    xtvx = X.T @ VX
    beta = ridge_solve(xtvx, X.T @ Vz)
    r = z - X @ beta
    u_hat = fac.solve(A.T @ (w * r))
    v = w * r - w * (A @ u_hat)  # V₀⁻¹r
    quad = float(r @ v)
    logdetV = fac.logdet - float(np.sum(np.log(w)))
    logdetX = float(np.linalg.slogdet(xtvx)[1]) if reml else 0.0
    if estimate_dispersion:
        dof = n - p if reml else n
        sigma2 = quad / dof
        dev = dof * np.log(sigma2) + logdetV + logdetX
    else:
        sigma2 = 1.0
        dev = quad + logdetV + logdetX
    if parts:
        return dev, beta, xtvx, sigma2, fac, {"r": r, "v": v, "u_hat": u_hat, "B": B, "VX": VX, "quad": quad}
    return dev, beta, xtvx, sigma2, fac


def working_lmm_objective(tmap, X, z, w, estimate_dispersion: bool, reml: bool):
    """``f(θ)`` → the criterion of :func:`working_lmm_deviance` and its gradient in θ, for L-BFGS-B.

    With A = ZΛ(θ), H = I + AᵀWA, v = V₀⁻¹r, û = H⁻¹AᵀWr, B = H⁻¹AᵀWX and M = XᵀV₀⁻¹X
    (β profiled out, so its derivative drops by the envelope theorem):

        ∂ log|V₀| = 2 tr(H⁻¹AᵀW ∂A),   ∂ rᵀV₀⁻¹r = −2 vᵀ ∂A û,   ∂ log|M| = −2 tr(M⁻¹(V₀⁻¹X)ᵀ ∂A B),

    and ∂A for one element of a factor L is one known column of nonzeros (ThetaMap's pattern).
    Returns None (use finite differences) without random effects, or when the design has several
    grouping factors and q·n > 4e6 (H⁻¹Aᵀ would be too large to hold).
    """
    if not tmap.blocks or not tmap.rows_solvable:
        return None
    n, p = X.shape
    dof = (n - p) if reml else n
    C = tmap._C
    positions = tmap.theta_positions()

    def f(th):
        A = tmap.ZLambda(th)
        dev, beta, xtvx, sigma2, fac, pc = working_lmm_deviance(X, A, z, w, estimate_dispersion, reml=reml,
                                                                parts=True)
        # per nonzero (i, a) of A, the derivative of the criterion w.r.t. that entry of A;
        # log|V₀| needs (H⁻¹Aᵀ)[C[i, a], i] (ThetaMap.solved_rows: O(n k²) for one grouping factor)
        G = 2.0 * w[:, None] * tmap.solved_rows(fac, A.D)
        dq = -2.0 * pc["v"][:, None] * pc["u_hat"][C]  # rᵀV₀⁻¹r
        G += (dof / pc["quad"]) * dq if estimate_dispersion else dq
        if reml:
            VXM = np.linalg.solve(xtvx, pc["VX"].T).T  # V₀⁻¹X M⁻¹, (n, p)
            G -= 2.0 * np.einsum("ip,iap->ia", VXM, pc["B"][C])
        grad = np.array([float(G[:, a] @ block.Xr[:, r]) for a, block, r in positions])
        return dev, grad

    return f


def minimize_working_lmm(tmap, X, z, w, estimate_dispersion, reml, theta0, bounds, options):
    """L-BFGS-B over θ of the working-LMM criterion, with its analytic gradient when it fits in memory."""
    fg = working_lmm_objective(tmap, X, z, w, estimate_dispersion, reml)
    jac = fg is not None
    if not jac:
        def fg(th):
            return working_lmm_deviance(X, tmap.ZLambda(th), z, w, estimate_dispersion, reml=reml)[0]

    return minimize_with_restart(fg, theta0, bounds, options, jac=jac, n_theta=len(theta0))


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
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in tmap.lower]
    converged, n_eval = False, 0
    for it in range(maxiter):
        _, mean, s, w = score_weights(family, eta, design.trials)
        mu = mean / n_trials
        dmu = np.maximum(family.link.inverse_deriv(eta), 1e-300)  # > 0: monotone links; saturated under separation
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
