"""Penalized IRLS: the conditional modes û at given (θ, β), the GLM's β and lme4's first stage
(β and u jointly) as starting values, and the IRLS normal equations' solve.

For fixed (θ, β), PIRLS finds the mode of ℓ(y | offset + Xβ + ZΛu) − ‖u‖²/2 (Bates et al. 2015,
eqs. 28–31), its log-likelihood summed relative to the saturated fit
(:meth:`~bayesglmm.families.Family.loglik_relative`) so that it stays accurate for large counts.

References
----------
Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear mixed-effects
models using lme4. Journal of Statistical Software 67(1).
"""

from __future__ import annotations

import numpy as np

from ..design import Design
from ..families import Family
from .records import LaplaceState
from .theta import penalized_system

__all__ = ["score_weights", "loglik_constant", "saturated_loglik", "ridge_solve", "glm_start", "pirls", "curvature",
           "joint_modes_start"]


def score_weights(family: Family, eta, trials):
    n = 1.0 if trials is None else trials
    mu = family.link.inverse(eta)
    dmu = family.link.inverse_deriv(eta)
    var = np.maximum(family.variance(family.clip_mu(mu)), 1e-300)
    return mu, n * mu, dmu / var, n * dmu**2 / var


def loglik_constant(design: Design, family: Family) -> float:
    """Σᵢ of the log-likelihood terms free of the parameters (:meth:`Family.loglik_constant`)."""
    return float(np.sum(family.loglik_constant(design.y, design.trials)))


def saturated_loglik(design: Design, family: Family) -> float:
    """Σᵢ ℓ(yᵢ; μ̂ᵢ), the saturated model's log-likelihood (:meth:`Family.loglik_saturated`): PIRLS
    sums :meth:`Family.loglik_relative` and adds this once, so that its sums stay accurate when the
    counts are large."""
    return float(np.sum(family.loglik_saturated(design.y, design.trials)))


def ridge_solve(M, rhs) -> np.ndarray:
    """Solve the normal equations M x = rhs of an IRLS step, M = XᵀWX.

    Under (quasi-)complete separation the weights of the separated rows underflow to 0
    and M becomes singular; a ridge of 1e-10 × the largest diagonal entry on such a vanishing
    diagonal (below 1e-14 of the largest) keeps the step finite (the coefficient then grows step
    by step, as R's ``glm`` lets it), and a least-squares solve is the last resort.
    ``check_separation`` reports the term. Every other diagonal gets 1e-10 of itself: a ridge of
    the largest on all of them biased the small ones (PQL's working model with Poisson counts near
    10⁹: the intercept's 200 against a slope's 10¹¹, a ridge of 12).
    """
    d = np.abs(np.diag(M))
    big = max(float(np.max(d)), 1e-300) if len(d) else 1.0
    A = M + np.diag(1e-10 * np.where(d > 1e-14 * big, d, big))
    if np.isfinite(A).all() and np.isfinite(rhs).all():  # NumPy's LAPACK calls: no SciPy wrapper
        try:                                              # overhead (≈ 0.1 ms a call: PIRLS, the LMM)
            np.linalg.cholesky(A)  # positive definite, as the Cholesky solve of assume_a="pos" needs
            return np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            pass
    return np.linalg.lstsq(M, rhs, rcond=None)[0]


def glm_start(design: Design, family: Family) -> np.ndarray:
    """β of the GLM without random effects (IRLS), the usual starting value."""
    y = design.y
    eta = family.link.link(family.initial_mu(y, design.trials))
    beta = np.zeros(design.X.shape[1])
    for _ in range(50):
        wk = family.working(eta, y, design.trials)
        w = wk.weight
        z = eta - design.offset + wk.score / np.maximum(w, 1e-300)
        WX = design.X * w[:, None]
        new = ridge_solve(design.X.T @ WX, WX.T @ z)
        if np.max(np.abs(new - beta)) < 1e-10:
            beta = new
            break
        beta = new
        eta = design.offset + design.X @ beta
    return beta


def pirls(design: Design, family: Family, A: np.ndarray, beta, u0=None, tol=1e-10, maxit=200,
          constant: float | None = None, utol: float | None = None) -> LaplaceState:
    """Penalized IRLS for the conditional modes û given β and A = ZΛ.

    Maximises ℓ(y | offset + Xβ + A u) − ‖u‖²/2 by Fisher scoring with step halving, until the
    objective changes by less than ``tol`` (relative) and the step by less than ``utol`` (its largest
    entry and its length in the norm of the curvature H). Under a
    canonical link Fisher scoring is Newton's method (a step below 1e-7 leaves an error of about
    its square); under another link it converges linearly, so ``utol`` defaults to 1e-11 there —
    the deviance must not depend on the warm start at the level its derivatives are checked.
    ``constant`` is :func:`saturated_loglik` when the caller has it (computed here otherwise): the
    log-likelihood is summed relative to the saturated fit (:meth:`Family.loglik_relative`).
    """
    if utol is None:
        utol = 1e-7 if family.canonical else 1e-11
    y, trials = design.y, design.trials
    base = design.offset + design.X @ beta
    u = np.zeros(A.shape[1]) if u0 is None else u0.copy()
    const = saturated_loglik(design, family) if constant is None else constant

    def objective(u):
        eta = base + A @ u
        return float(np.sum(family.loglik_relative(y, family.link.inverse(eta), trials))) + const - 0.5 * float(u @ u)

    def system(eta):  # the score from the family (the beta-binomial's is not (y − nμ)μ′/V)
        wk = family.working(eta, y, trials)
        return wk.mean, wk.score, penalized_system(A, wk.weight)

    y_size = float(np.sum(np.abs(y)))
    obj = objective(u)
    if u0 is not None and not np.isfinite(obj):  # a warm start from far away (the modes at θ ≈ 0 are
        u = np.zeros(A.shape[1])                  # b/θ: huge) can overflow here: start from 0 instead
        obj = objective(u)
    converged = False
    for _ in range(maxit):
        eta = base + A @ u
        mean, score, lu = system(eta)
        grad = A.T @ score - u
        delta = lu.solve(grad)
        # the objective's own rounding: each row's μ − y is a difference of numbers of size y, so a step
        # that changes it by less than ε·Σ(|y| + |μ|) is no worse (with counts near 10⁷ that is 10⁻⁷, and
        # steps refused for it stalled PIRLS short of the mode)
        slack = 1e-12 + 8.0 * np.finfo(float).eps * (y_size + float(np.sum(np.abs(mean))))
        step = 1.0
        while True:
            new = objective(u + step * delta)
            if new >= obj - slack or step < 1e-8:
                break
            step /= 2
        u, change = u + step * delta, new - obj
        obj = new
        # the step's size in the curvature's norm, √(δᵀHδ) = √(gᵀH⁻¹g), as well as its largest entry:
        # with counts near 10⁷ (H ≈ 10⁷) a step of 10⁻⁷ in u still moved μ by 0.1 and the deviance's
        # gradient by 1 between calls from different warm starts
        size = max(float(np.max(np.abs(step * delta), initial=0.0)), step * np.sqrt(max(float(grad @ delta), 0.0)))
        if abs(change) < tol * (1 + abs(obj)) and size < utol:
            converged = True
            break
    eta = base + A @ u
    lu = curvature(family, A, eta, y, trials)
    logdet = lu.logdet
    ll = float(np.sum(family.loglik_relative(y, family.link.inverse(eta), trials))) + const
    return LaplaceState(u=u, eta=eta, loglik_cond=ll, logdet=logdet, factor=lu, converged=converged)


def curvature(family: Family, A, eta, y, trials):
    """The factor of the Laplace curvature H = AᵀWA + I at η: W the Fisher weights (lme4's), or the
    observed weights −∂²ℓ/∂η² for a family with ``laplace_curvature == "observed"`` and a
    non-canonical link (glmmTMB's exact Hessian; the two coincide for a canonical link)."""
    if family.laplace_curvature == "observed" and not family.canonical:
        return penalized_system(A, family.working(eta, y, trials).obs_weight)
    return penalized_system(A, score_weights(family, eta, trials)[3])


def joint_modes_start(design: Design, family: Family, tmap, theta, beta, maxit: int = 50) -> np.ndarray:
    """β maximising ℓ(y | Xβ + ZΛu) − ‖u‖²/2 jointly with u at the given θ: lme4's first stage
    (``nAGQ = 0``), from ``beta`` (the GLM's). Newton steps on (β, u) by block elimination,
    δβ = M⁻¹(g_β − XᵀWA H⁻¹g_u), δu = H⁻¹(g_u − AᵀWX δβ), M = XᵀWX − XᵀWA H⁻¹AᵀWX, with step
    halving. The GLM's β ignores the groups: with Poisson counts near 10⁹ its within-group slope
    was 30 SEs off, a start 5·10⁶ of deviance from the optimum where L-BFGS-B's first steps
    overflowed."""
    A = tmap.ZLambda(theta)
    X, y, trials = design.X, design.y, design.trials
    const = saturated_loglik(design, family)
    u = np.zeros(A.shape[1])

    def objective(b, u):
        mu = family.link.inverse(design.offset + X @ b + A @ u)
        return float(np.sum(family.loglik_relative(y, mu, trials))) + const - 0.5 * float(u @ u)

    obj = objective(beta, u)
    for _ in range(maxit):
        wk = family.working(design.offset + X @ beta + A @ u, y, trials)
        r, w = wk.score, wk.weight
        g_b, g_u = X.T @ r, A.T @ r - u
        fac = penalized_system(A, w)
        AtWX = np.asarray(A.T @ (w[:, None] * X))
        HinvAtWX = np.asarray(fac.solve(AtWX))
        M = X.T @ (w[:, None] * X) - AtWX.T @ HinvAtWX
        d_b = ridge_solve(M, g_b - HinvAtWX.T @ g_u)
        d_u = fac.solve(g_u - AtWX @ d_b)
        step = 1.0
        while step > 1e-8:
            new = objective(beta + step * d_b, u + step * d_u)
            if np.isfinite(new) and new >= obj - 1e-12:
                break
            step /= 2
        if step <= 1e-8:
            break
        beta, u, change, obj = beta + step * d_b, u + step * d_u, new - obj, new
        if abs(change) < 1e-10 * (1 + abs(obj)):
            break
    return beta
