"""Standard errors of a frequentist fit's predictions, as glmmTMB's ``predict(fit, newdata, se.fit = TRUE)``.

**Population level** (``random_effects=False``), η̂ = offset + xᵀβ̂: Var η̂ = xᵀ V_β x, V_β the fit's
``vcov`` — the delta method on β, row by row (:func:`population_variance`), so that a row's SE is the
one :meth:`~bayesglmm.frequentist.fit.MLFit.fixed_effects` gives the same combination of coefficients.
For Laplace and AGQ, V_β is the β block of the covariance of (θ, β), glmmTMB's. For an LMM it is lmer's
σ²(XᵀV₀⁻¹X)⁻¹, θ taken as known; glmmTMB's ML ``vcov`` adds θ's coupling D V_θ Dᵀ (below), which is 0
where β̂ does not depend on θ (balanced sleepstudy: the two agree) and made the SEs of an unbalanced
``(1 + x | g)`` design 0.9% and 2.6% larger.

**Conditional on the random effects**, η̂ = offset + xᵀβ̂ + aᵀû, with aᵀ the row of A = ZΛ(θ) and û the
conditional modes (b̂ = Λû). TMB's ``sdreport``, which glmmTMB's ``predict`` calls, gives a function
of the fixed parameters φ = (θ, β) and of the random effects u the variance

    Var η̂ᵢ = aᵢᵀ H⁻¹ aᵢ + gᵢᵀ V gᵢ,                                                        (1)

with H = AᵀWA + I the negative Hessian of the joint log-density in u at û (W the observed weights
−∂²ℓ/∂η², Fisher's under a canonical link), V the covariance of φ̂ (the inverse Hessian of the
Laplace −log L, :attr:`~bayesglmm.frequentist.fit.MLFit.vcov_full`) and gᵢ the total derivative of η̂ᵢ
in φ, û moving with φ by the mode equations Aᵀs(η) − u = 0 (s = ∂ℓ/∂η, the score):

    ∂η̂ᵢ/∂β = xᵢ − Kᵦᵀaᵢ,                     Kᵦ = H⁻¹AᵀWX,
    ∂η̂ᵢ/∂θₜ = (∂aᵢ/∂θₜ)ᵀû + K_tᵀaᵢ,          K_t = H⁻¹(∂Aₜᵀs − AᵀW ∂Aₜû).

With θ known, (1) is [x; a]ᵀ J⁻¹ [x; a] for J = [[XᵀWX, XᵀWA], [AᵀWX, AᵀWA + I]], the precision of the
penalized system in (β, u) — by the block inverse of J, whose β block (XᵀWX − XᵀWA H⁻¹AᵀWX)⁻¹ is the
covariance of β̂ with θ known. V's θ part adds θ's uncertainty through the modes' dependence on θ
(how much they shrink), as glmmTMB does; on sleepstudy it is 7% of the SE of the first row
(12.95 against 12.07 with θ known). Kᵦ and K take p + nθ solves with H, once; the first term needs H⁻¹
only at the pairs of columns one row touches (``inverse_entries`` of
:class:`~bayesglmm.frequentist.factor.Factor` and :class:`~bayesglmm.frequentist.schur.SchurFactor`):
nothing of size n × q is formed.

A level not seen in fitting has û = 0 whatever φ (the mode of a random effect without data) and H⁻¹ = I
in its own columns: it adds aᵀa = xrᵀΣxr, the random effect's variance, to (1) and nothing to g. This is
glmmTMB's prediction for a new level (b = 0 with the random-effect distribution's variance), wider than
the population-level one.

Per method, in the internal parametrization of :mod:`bayesglmm.scaling` (η = c + s η̃, so the SE is s
times the internal one):

- Laplace: (1), V the inverse Hessian in (θ, β). AGQ: the same with V from the AGQ Hessian, around the
  Laplace modes (glmer's conditional modes of an AGQ fit; glmmTMB has no AGQ to compare with).
- ML, REML (Gaussian LMM): θ relative to σ, so that H = AᵀA + I, the first term is σ² aᵀH⁻¹a and η̂
  depends on θ and not on σ. V = [[V_θ, V_θDᵀ], [DV_θ, σ²M⁻¹ + DV_θDᵀ]] with V_θ the inverse
  Hessian of the profiled ML (REML) log-likelihood in θ, M = XᵀV₀⁻¹X and
  D = ∂β̂/∂θ = −M⁻¹Xᵀ(∂A û + A K): (1) is then σ²[x; a]ᵀJ⁻¹[x; a] + dᵢᵀV_θdᵢ, dᵢ the total
  derivative of η̂ᵢ in θ with β̂ moving too — glmmTMB's ML sdreport (β among the fixed parameters)
  and its REML one (β integrated out like u) in one formula.
- PQL: no likelihood, so no V_θ: (1) with θ known — the working LMM's joint (β, u) covariance at the
  weights of the final η̂, times its dispersion σ² (1 when fixed).

References
----------
Kristensen, K., Nielsen, A., Berg, C. W., Skaug, H. and Bell, B. M. (2016). TMB: Automatic
differentiation and Laplace approximation. Journal of Statistical Software 70(5), sec. 2.4.
Brooks, M. E., Kristensen, K., van Benthem, K. J. et al. (2017). glmmTMB balances speed and flexibility
among packages for zero-inflated generalized linear mixed modeling. The R Journal 9(2), 378–400.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .optimize import central_value_and_grad, hessian_from_grad, safe_inverse
from .pirls import pirls, score_weights
from .rescale import internal_modes
from .theta import penalized_system
from .working_lmm import working_lmm_deviance, working_lmm_objective

__all__ = ["ModeSystem", "mode_system", "glmm_system", "lmm_system", "pql_system", "population_variance",
           "conditional_variance", "row_pattern"]


@dataclass(frozen=True)
class ModeSystem:
    """The conditional modes at a fit's estimates and what (1) of the module docstring asks of them.

    Attributes
    ----------
    design : Design
        The design the fit's engine saw (the internal one of :mod:`bayesglmm.scaling`).
    tmap : ThetaMap
    theta : ndarray
        θ of A = ZΛ(θ): absolute for the GLMMs, relative to σ for the LMMs and PQL.
    u : ndarray, shape (q,)
        The modes û at θ.
    score : ndarray, shape (n,), or None
        s, the mode equations' residual Aᵀs − u = 0; None when θ is taken as known (PQL).
    weight : ndarray, shape (n,)
        W of H = AᵀWA + I.
    factor
        The factorisation of H.
    scale : float
        σ², the factor of the first term of (1) (1 for the GLMMs and PQL with the dispersion fixed).
    vcov : ndarray
        The covariance of (θ, β), or of β alone when ``score`` is None; NaN where the Hessian was not
        invertible (the standard errors are then NaN).
    """

    design: object
    tmap: object
    theta: np.ndarray
    u: np.ndarray
    score: np.ndarray | None
    weight: np.ndarray
    factor: object
    scale: float
    vcov: np.ndarray
    #: a dispersion family: ∂û/∂log φ = H°⁻¹Aᵀ ∂s/∂log φ (the modes move with θ or the shape; V's last
    #: row and column are log φ's), else None
    dispersion_modes: np.ndarray | None = None

    @property
    def beta_solve(self) -> np.ndarray:
        """Kᵦ = H⁻¹AᵀWX, shape (q, p)."""
        A, X = self.tmap.ZLambda(self.theta), self.design.X
        return np.asarray(self.factor.solve(np.asarray(A.T @ (self.weight[:, None] * X))))

    def theta_solve(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, ∂A û): K = H⁻¹(∂Aₜᵀs − AᵀW ∂Aₜû) column by column, shape (q, nθ), and ∂Aₜû on
        the fitting rows, shape (n, nθ) — ∂A for one element of a factor L is one known column of
        A's nonzeros (:meth:`~bayesglmm.frequentist.theta.ThetaMap.theta_positions`)."""
        tmap = self.tmap
        C, q = tmap._C, tmap._q
        positions = tmap.theta_positions()
        xr = np.column_stack([block.Xr[:, r] for _, block, r in positions])
        cols = [a for a, _, _ in positions]
        dA_u = xr * self.u[C[:, cols]]
        dA_s = np.column_stack([np.bincount(C[:, a], weights=xr[:, t] * self.score, minlength=q)
                                for t, a in enumerate(cols)])
        A = tmap.ZLambda(self.theta)
        K = np.asarray(self.factor.solve(dA_s - np.asarray(A.T @ (self.weight[:, None] * dA_u))))
        return K.reshape(q, len(cols)), dA_u


def glmm_system(design, family, tmap, theta, beta, u0, vcov) -> ModeSystem:
    """Laplace and AGQ: PIRLS at (θ, β) from ``u0`` (the fit's modes: one step confirms them), the observed
    weights and their H (Fisher's under a canonical link), V = ``vcov`` of (θ, β) (NaN when None)."""
    A = tmap.ZLambda(theta)
    state = pirls(design, family, A, beta, u0=u0)
    wk = family.working(state.eta, design.y, design.trials)
    factor = state.factor if family.canonical else penalized_system(A, wk.obs_weight)
    k = tmap.n_theta + design.X.shape[1] + int(family.has_dispersion)
    V = np.full((k, k), np.nan) if vcov is None else np.asarray(vcov, dtype=float)
    modes = None
    if family.has_dispersion:  # ∂s/∂log φ at η̂ by a central difference (step 10⁻⁵), then the mode equations
        h, phi = 1e-5, family.dispersion
        ds = (family.with_dispersion(phi * np.exp(h)).working(state.eta, design.y, design.trials).score
              - family.with_dispersion(phi * np.exp(-h)).working(state.eta, design.y, design.trials).score) / (2 * h)
        modes = np.asarray(factor.solve(np.asarray(A.T @ ds))).ravel()
    return ModeSystem(design, tmap, np.asarray(theta, dtype=float), state.u, wk.score, wk.obs_weight, factor, 1.0, V,
                      modes)


def lmm_system(design, tmap, theta, reml: bool) -> ModeSystem:
    """ML/REML: the penalized least squares at θ (relative to σ), V_θ from the Hessian of the profiled
    criterion (differences of its analytic gradient, as the Laplace fits' Hessian) and V built with
    D = ∂β̂/∂θ as the module docstring says."""
    X, z = design.X, design.y - design.offset
    w = np.ones(design.nobs)
    theta = np.asarray(theta, dtype=float)
    A = tmap.ZLambda(theta)
    _, _, M, sigma2, factor, parts = working_lmm_deviance(X, A, z, w, True, reml=reml, parts=True)
    system = ModeSystem(design, tmap, theta, parts["u_hat"], parts["v"], w, factor, float(sigma2), None)
    fg = working_lmm_objective(tmap, X, z, w, True, reml)
    if fg is None:  # H⁻¹Aᵀ would not fit in memory: central differences (as the fit's own Hessian then)
        fg = central_value_and_grad(lambda th: working_lmm_deviance(X, tmap.ZLambda(th), z, w, True, reml=reml)[0],
                                    tmap.lower)
    lower = np.asarray(tmap.lower, dtype=float)
    V_theta = safe_inverse(hessian_from_grad(fg, theta, lower, tmap.n_theta) / 2.0)  # deviance = −2 log L
    K, dA_u = system.theta_solve()
    D = -np.linalg.solve(M, X.T @ (dA_u + A @ K))  # ∂β̂/∂θ, (p, nθ)
    VD = V_theta @ D.T
    return replace(system, vcov=np.block([[V_theta, VD], [VD.T, sigma2 * safe_inverse(M) + D @ VD]]))


def pql_system(design, family, tmap, theta, beta, u, sigma) -> ModeSystem:
    """PQL: the working LMM at the weights of the final η̂ = offset + Xβ̂ + ZΛ(θ)û (θ, û absolute),
    θ relative to the dispersion σ (1 when fixed), θ known: V = σ²(XᵀV₀⁻¹X)⁻¹."""
    eta = design.offset + design.X @ beta + tmap.ZLambda(theta) @ u
    w = score_weights(family, eta, design.trials)[3]
    rel = np.asarray(theta, dtype=float) / sigma
    A, X = tmap.ZLambda(rel), design.X
    factor = penalized_system(A, w)
    AtWX = np.asarray(A.T @ (w[:, None] * X))
    M = X.T @ (w[:, None] * X) - AtWX.T @ np.asarray(factor.solve(AtWX))
    return ModeSystem(design, tmap, rel, np.asarray(u, dtype=float) * sigma, None, w, factor, float(sigma**2),
                      sigma**2 * safe_inverse(M))


def mode_system(fit) -> ModeSystem:
    """The :class:`ModeSystem` of an :class:`~bayesglmm.frequentist.fit.MLFit` (or ``PQLFit``), in its
    internal parametrization; for a fit read from a file, from the estimates and modes it keeps."""
    internal, scaling, family = fit._internal, fit._scaling, fit.model.family
    design, tmap = scaling.design, internal.tmap
    if family.has_scale:  # a Gaussian identity-link model: an LMM, by ML unless fitted by REML
        return lmm_system(design, tmap, internal.theta / internal.sigma, reml=fit.method == "reml")
    if internal.state is not None:
        u = internal.state.u
    else:
        u = internal_modes(fit._state.u, internal.theta, tmap, scaling)
    if fit.method == "pql":
        return pql_system(design, family.with_dispersion(1.0) if family.has_dispersion else family, tmap,
                          internal.theta, internal.beta, u, float(internal.sigma))
    if family.has_dispersion:
        family = family.with_dispersion(internal.dispersion)
    return glmm_system(design, family, tmap, internal.theta, internal.beta, u, internal.vcov_full)


def population_variance(X, vcov) -> np.ndarray:
    """xᵢᵀ V xᵢ for each row of ``X`` (n × p), without an n × n matrix."""
    X = np.asarray(X, dtype=float)
    return np.einsum("ij,jk,ik->i", X, np.asarray(vcov, dtype=float), X)


def row_pattern(tmap, theta, rows) -> tuple[np.ndarray, np.ndarray]:
    """(C, D) of new rows, as :class:`~bayesglmm.frequentist.theta.ThetaMap` keeps them for the fitting
    rows: the column of each of a row's m nonzeros of ZΛ(θ) (−1 for a level not seen in fitting) and
    their values [Xr_k L_k]_k, shape (n, m) each. ``rows``: a :class:`~bayesglmm.design.NewData`."""
    cols, values, off = [], [], 0
    for block, index, Xr, L in zip(tmap.blocks, rows.index, rows.Xr, tmap.factors(theta)):
        k = block.n_terms
        index = np.asarray(index)
        c = off + index[:, None] * k + np.arange(k)[None, :]
        cols.append(np.where(index[:, None] >= 0, c, -1))
        values.append(np.asarray(Xr, dtype=float) @ L)
        off += block.n_levels * k
    return np.hstack(cols), np.hstack(values)


def conditional_variance(system: ModeSystem, rows) -> np.ndarray:
    """Var η̂ᵢ of (1) in the module docstring for each row of ``rows`` (a
    :class:`~bayesglmm.design.NewData` in ``system``'s parametrization)."""
    tmap = system.tmap
    C, D = row_pattern(tmap, system.theta, rows)
    seen = C >= 0
    Cs, Ds = np.where(seen, C, 0), np.where(seen, D, 0.0)
    hinv = system.factor.inverse_entries(np.broadcast_to(Cs[:, :, None], Cs.shape + Cs.shape[1:]),
                                         np.broadcast_to(Cs[:, None, :], Cs.shape + Cs.shape[1:]))
    quad = np.einsum("ia,iab,ib->i", Ds, hinv, Ds) + np.sum(np.where(seen, 0.0, D) ** 2, axis=1)
    g = np.asarray(rows.X, dtype=float) - np.einsum("ia,iap->ip", Ds, system.beta_solve[Cs])
    if system.score is not None:
        K, _ = system.theta_solve()
        positions = tmap.theta_positions()
        block_of = {id(b): k for k, b in enumerate(tmap.blocks)}
        xr = np.column_stack([np.asarray(rows.Xr[block_of[id(block)]], dtype=float)[:, r] for _, block, r in positions])
        cols = [a for a, _, _ in positions]
        dA_u = np.where(seen[:, cols], xr * system.u[Cs[:, cols]], 0.0)  # (∂aᵢ/∂θₜ)ᵀû: 0 at a new level
        g = np.hstack([dA_u + np.einsum("ia,iat->it", Ds, K[Cs]), g])
    if system.dispersion_modes is not None:  # η̂ moves with log φ through the modes only
        g = np.hstack([g, np.einsum("ia,ia->i", Ds, system.dispersion_modes[Cs])[:, None]])
    return system.scale * quad + np.einsum("ij,jk,ik->i", g, system.vcov, g)
