"""The working linear mixed model: z = Xβ + A u + e, u ~ N(0, I), e ~ N(0, σ² W⁻¹), A = ZΛ(θ).

One criterion, :func:`working_lmm_deviance` (−2 × the (RE)ML log-likelihood up to a constant, β and
σ² profiled out, by Woodbury with H = I + AᵀWA), with its θ-gradient (:func:`working_lmm_objective`)
and its minimiser (:func:`minimize_working_lmm`), serves the three engines that need it: PQL's
iterations (weights W of the GLM, σ fixed or estimated), the Gaussian LMM's ML and REML fits
(W = I) and their profiles (:func:`ml_deviance_in_sigma`: the ML deviance with σ a parameter).

References
----------
Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear mixed-effects
models using lme4. Journal of Statistical Software 67(1), sec. 3.
"""

from __future__ import annotations

import numpy as np

from .optimize import minimize_with_restart
from .pirls import ridge_solve
from .theta import penalized_system

__all__ = ["working_lmm_deviance", "working_lmm_objective", "minimize_working_lmm", "ml_deviance_in_sigma"]


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


def ml_deviance_in_sigma(tmap, X, z, w):
    """The ML deviance of the LMM z = Xβ + ZΛu + e as a function of x = (θ on the absolute scale,
    log σ), β profiled out, every constant included: what the profile intervals of an LMM fit move
    along (:mod:`bayesglmm.frequentist.profile`, the residual SD among them), from the one working-LMM
    criterion rather than a deviance of its own."""
    nt, dof = tmap.n_theta, X.shape[0]

    def dev(x):
        sigma2 = np.exp(2 * x[nt])
        d, _, _, s2_hat, _ = working_lmm_deviance(X, tmap.ZLambda(x[:nt] / np.sqrt(sigma2)), z, w, True, reml=False)
        return float(d - dof * np.log(s2_hat) + dof * np.log(2 * np.pi * sigma2) + dof * s2_hat / sigma2)

    return dev
