"""Maximum likelihood by the Laplace approximation, lme4's way, on a :class:`Design`.

Random effects are written ``b = Λ(θ) u`` with spherical ``u ~ N(0, I)``; Λ is block
diagonal, ``I_J ⊗ L`` for a block with J levels and lower-triangular relative
covariance factor ``L`` (θ holds L's lower triangle, diagonal ≥ 0). For fixed (θ, β),
penalized IRLS finds the conditional mode û of

    ℓ(y | η) − ‖u‖²/2,      η = offset + Xβ + ZΛu,

and the Laplace approximation of the marginal log-likelihood is

    log L(θ, β) ≈ ℓ(y | η̂) − ‖û‖²/2 − ½ log det(ΛᵀZᵀ W Z Λ + I),

with W the IRLS (Fisher) weights at η̂ (Bates et al. 2015, eqs. 28–31; for the
canonical links the Fisher and observed information coincide). ``laplace_deviance``
returns −2 log L as a function of the packed vector (θ, β), which ``fit_laplace``
minimises with L-BFGS-B (Powell if that fails) using its analytic gradient (any link, and AGQ's
exact one through its adaptive nodes) and finishes by Newton steps while the Newton
decrement is above 1e-8. A fit counts as converged only if the decrement gᵀH⁻¹g at the end, on
the gradient projected onto the free parameters, is at most ``DECREMENT_TOL`` (1e-6 of
log-likelihood left to gain), not merely because the optimiser's steps became small. Standard
errors come from the Hessian in (θ, β) by differences of that gradient, as glmer reports them.

This module holds the objective and the fit; the stages they are made of have modules of their
own, as lme4's: :mod:`~bayesglmm.frequentist.theta` (θ and the ZΛ pattern),
:mod:`~bayesglmm.frequentist.factor` (the factorisation of ΛᵀZᵀWZΛ + I),
:mod:`~bayesglmm.frequentist.pirls` (the conditional modes and the starting values),
:mod:`~bayesglmm.frequentist.optimize` (L-BFGS-B, the Newton finish, the convergence test) and
:mod:`~bayesglmm.frequentist.records` (what an engine returns).

References
----------
Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear mixed-effects
models using lme4. Journal of Statistical Software 67(1).
Breslow, N. E. and Clayton, D. G. (1993). Approximate inference in generalized linear
mixed models. JASA 88, 9–25.
"""

from __future__ import annotations

import numpy as np

from ..design import Design
from ..families import Family
from ..results import NotApplicableError
from .agq import agq_loglik, agq_value_and_grad, check_agq, group_data
from .optimize import (DECREMENT_TOL, central_value_and_grad, decrement_tolerance, hessian_from_grad,
                       minimize_with_restart, newton_polish, powell_fallback, safe_inverse, scipy_bounds)
from .pirls import glm_start, joint_modes_start, pirls, saturated_loglik
from .records import EngineResult, LaplaceState
from .theta import ThetaMap, lower_factor, penalized_system

__all__ = ["laplace_deviance", "LaplaceObjective", "DispersionObjective", "packed", "LOG_DISPERSION_BOUNDS",
           "laplace_gradient", "fit_laplace", "beta_scale",
           # the stages it is made of, importable from here as before (their modules are theta, factor,
           # records, pirls and optimize)
           "ThetaMap", "lower_factor", "pirls", "LaplaceState", "EngineResult", "safe_inverse", "DECREMENT_TOL",
           "newton_polish"]


def laplace_deviance(design: Design, family: Family, nagq: int = 1, full=()):
    """The deviance −2 log L as a function of the packed vector ``(θ, β)``: a
    :class:`LaplaceObjective` and its :class:`ThetaMap` (``objective.tmap``), as a pair.

    ``nagq = 1``: the Laplace approximation; ``nagq > 1``: adaptive Gauss–Hermite
    quadrature with that many nodes per dimension (one grouping factor only; see
    :mod:`bayesglmm.frequentist.agq`), centred at the same PIRLS modes. ``full``: the blocks
    whose factor is a full square matrix (:class:`ThetaMap`).
    """
    if family.has_dispersion:
        objective = DispersionObjective(design, family, nagq, full)
    else:
        objective = LaplaceObjective(design, family, nagq, full)
    return objective, objective.tmap


#: bounds of a dispersion family's log-dispersion in the fits: θ (or the shape) from 10⁻⁶ to 10⁸
#: (10⁸ is the Poisson's or the binomial's limit for any count of a real data set)
LOG_DISPERSION_BOUNDS = (np.log(1e-6), np.log(1e8))


def packed(raw) -> np.ndarray:
    """The parameter vector of :func:`laplace_deviance` at an engine's estimates: (θ, β), and the
    log-dispersion last for a dispersion family."""
    x = [np.asarray(raw.theta, dtype=float), np.asarray(raw.beta, dtype=float)]
    if getattr(raw, "dispersion", None) is not None:
        x.append([np.log(raw.dispersion)])
    return np.concatenate(x)


class DispersionObjective:
    """−2 log L of a dispersion family's GLMM (negative binomial, beta-binomial, Gamma) as a
    function of (θ, β, log φ), φ the family's dispersion (θ, the shape), by the Laplace
    approximation or AGQ: a :class:`LaplaceObjective` at the family with φ fixed, whose gradient
    in (θ, β) it extends by the derivative in log φ (a central difference of the deviance, step
    10⁻⁴, both sides from the modes at φ; the modes move with φ, so the envelope theorem alone
    would not give it).

    Attributes
    ----------
    design, family, nagq, tmap
        As :class:`LaplaceObjective`'s; ``family`` without a dispersion.
    inner : LaplaceObjective
        The objective at the last φ evaluated.
    """

    has_dispersion = True
    step = 1e-4

    def __init__(self, design: Design, family: Family, nagq: int = 1, full=()):
        self.design, self.family, self.nagq = design, family, nagq
        self.inner = LaplaceObjective(design, family.with_dispersion(family.dispersion or 1.0), nagq, full)
        self.tmap = self.inner.tmap

    @property
    def warm_u(self):
        return self.inner.warm_u

    @warm_u.setter
    def warm_u(self, u):
        self.inner.warm_u = u

    def at(self, log_phi: float) -> LaplaceObjective:
        """The inner objective with φ = exp(log_phi) (its saturated log-likelihood recomputed)."""
        inner = self.inner
        family = self.family.with_dispersion(np.exp(float(log_phi)))
        if family != inner.family:
            inner.family = family
            inner.constant = saturated_loglik(self.design, family)
        return inner

    def state(self, params, u0=None) -> LaplaceState:
        params = np.asarray(params, dtype=float)
        return self.at(params[-1]).state(params[:-1], u0)

    def __call__(self, params) -> float:
        params = np.asarray(params, dtype=float)
        if not LOG_DISPERSION_BOUNDS[0] - 1.0 <= params[-1] <= LOG_DISPERSION_BOUNDS[1] + 1.0:
            return np.inf
        return self.at(params[-1])(params[:-1])

    def value_and_grad(self, params):
        params = np.asarray(params, dtype=float)
        inner = self.at(params[-1])
        out = inner.value_and_grad(params[:-1])
        if out is None:
            return None
        f, g = out
        u = None if inner.warm_u is None else inner.warm_u.copy()
        side = []
        for d in (self.step, -self.step):
            side.append(self.at(params[-1] + d).__call__(params[:-1]))
            self.inner.warm_u = None if u is None else u.copy()
        self.at(params[-1])
        return f, np.concatenate([g, [(side[0] - side[1]) / (2.0 * self.step)]])


class LaplaceObjective:
    """−2 log L of a GLMM by the Laplace approximation (``nagq = 1``) or AGQ, as a function of
    (θ, β) (lme4's stage 2, ``devFunOnly``), with its gradient.

    Calling it, :meth:`state` and :meth:`value_and_grad` run PIRLS at the parameters; PIRLS starts
    from :attr:`warm_u`, the conditional modes of the last evaluation, which every evaluation sets:
    the warm start is this object's one piece of state, in the open (a new objective starts cold),
    not a dictionary inside a closure. :meth:`state` also takes the start explicitly.

    Attributes
    ----------
    design, family, nagq
    tmap : ThetaMap
    warm_u : ndarray or None
        The modes PIRLS starts from next.
    """

    def __init__(self, design: Design, family: Family, nagq: int = 1, full=()):
        if family.has_scale:
            raise NotApplicableError("the Laplace engine is for non-Gaussian families; a Gaussian model is an LMM "
                                     "(its Laplace approximation is exact): use method='ml' or 'reml'")
        if nagq != 1:
            check_agq(design, nagq)
        self.design, self.family, self.nagq = design, family, nagq
        self.agq_data = group_data(design) if nagq != 1 else None  # each distinct group pattern once
        self.tmap = ThetaMap(design, full)
        self.constant = saturated_loglik(design, family)
        self.warm_u = None

    def state(self, params, u0=None) -> LaplaceState:
        """PIRLS at ``params`` from ``u0`` (default :attr:`warm_u`); sets :attr:`warm_u` to its modes."""
        tmap = self.tmap
        params = np.asarray(params, dtype=float)
        theta, beta = params[:tmap.n_theta], params[tmap.n_theta:]
        st = pirls(self.design, self.family, tmap.ZLambda(theta), beta, u0=self.warm_u if u0 is None else u0,
                   constant=self.constant)
        self.warm_u = st.u
        return st

    def __call__(self, params) -> float:
        params = np.asarray(params, dtype=float)
        st = self.state(params)
        if self.nagq == 1:
            return -2.0 * st.loglik
        tmap = self.tmap
        L, u = tmap.factors(params[:tmap.n_theta])[0], st.u
        if tmap.full:  # the product rule is not rotation invariant: integrate on the lower-triangular
            # factor of LLᵀ (L = L_c Qᵀ, u_c = Qᵀ u), as a fit does, so that a full factor is the same model
            L, Q = lower_factor(L)
            u = (u.reshape(-1, L.shape[0]) @ Q).ravel()
        return -2.0 * agq_loglik(self.design, self.family, L, params[tmap.n_theta:], u, self.nagq, self.agq_data)

    def value_and_grad(self, params):
        """Deviance and its gradient in (θ, β), analytic for every link.

        With û the conditional mode, s = ∂ℓ/∂η at û, W the Fisher weights (those of PIRLS and of
        the Laplace curvature), w′ = dW/dη, H = AᵀWA + I (A = ZΛ), hᵢ = aᵢᵀH⁻¹aᵢ, and W° the
        observed weights −∂²ℓ/∂η² with H° = AᵀW°A + I (the Hessian of the mode equations; H° = H
        for a canonical link), the envelope theorem and implicit differentiation of the mode
        equations Aᵀs − u = 0 give, for a parameter x,

            ∂dev/∂x = −2 sᵀ∂ηₓ + 2 tr(H⁻¹AᵀW ∂A) + Σᵢ hᵢ w′ᵢ ∂η̂ᵢ/∂x,
            ∂η̂/∂x = ∂ηₓ + A H°⁻¹(∂Aᵀ s − AᵀW° ∂ηₓ),

        with ∂ηₓ = X (β, where ∂A = 0) or ∂A û (θ: one known column of nonzeros of A per element of
        a factor L). The family answers s, W, w′ and W° (:meth:`~bayesglmm.families.Family.working`).
        Everything needs H⁻¹ only where A is nonzero (:meth:`ThetaMap.solved_rows`): O(n k²) for one
        grouping factor, from H⁻¹Aᵀ otherwise (None when that is too large: the optimiser then uses
        differences). AGQ (``nagq > 1``) has its own exact gradient through the adaptive nodes, for one
        term and for a block of k on the product rule (:func:`~bayesglmm.frequentist.agq.agq_value_and_grad`,
        its node loops compiled; the scalar :func:`~bayesglmm.frequentist.agq.agq_value_and_beta_grad`
        is the reference it is tested against at k = 1).
        """
        params = np.asarray(params, dtype=float)
        tmap = self.tmap
        if not tmap.blocks:
            return None
        nt = tmap.n_theta
        st = self.state(params)
        if self.nagq > 1:  # AGQ: θ and β through the adaptive nodes (the product rule's for k terms), compiled
            if tmap.full:  # its gradient is in the lower-triangular factor's entries: the caller differences
                return None
            entries = [(r, c) for c, _, r in tmap.theta_positions()]  # θ's entries (row, column) of L
            f0, gt, gb = agq_value_and_grad(self.design, self.family, tmap.factors(params[:nt])[0], entries,
                                            params[nt:], st.u, self.nagq, self.agq_data)
            return f0, np.concatenate([gt, gb])
        g = laplace_gradient(self.design, self.family, tmap, params, st)
        if g is None:
            return None
        return -2.0 * st.loglik, np.concatenate([g[1], g[0]])


def laplace_gradient(design, family, tmap, params, st):
    """(β-gradient, θ-gradient) of the Laplace deviance at ``params`` given PIRLS's state ``st``
    there (:meth:`LaplaceObjective.value_and_grad` has the derivation), or None when H⁻¹ at A's
    nonzeros would not fit in memory."""
    X, y, nt = design.X, design.y, tmap.n_theta
    C, q = tmap._C, tmap._q
    positions = tmap.theta_positions()
    th = params[:nt]
    D = tmap.values(th)
    hia = tmap.solved_rows(st.factor, D)
    if hia is None:
        return None
    A, fac = tmap.ZLambda(th), st.factor
    wk = family.working(st.eta, y, design.trials)
    w, dw, resid = wk.weight, wk.dweight, wk.score
    if family.laplace_curvature == "observed" and not family.canonical:
        # the curvature of the log-determinant is the observed one (PIRLS's factor is of it): the same
        # formulas with W° and dW°/dη in place of W and dW/dη
        w, dw = wk.obs_weight, family.observed_weight_deriv(st.eta, y, design.trials)
        w_obs, fac_obs = w, fac
    else:
        w_obs, fac_obs = (w, fac) if family.canonical else (wk.obs_weight, penalized_system(A, wk.obs_weight))
    lev_dw = np.sum(D * hia, axis=1) * dw
    deta = X - A @ fac_obs.solve(np.asarray(A.T @ (w_obs[:, None] * X)))
    g_beta = -2.0 * X.T @ resid + deta.T @ lev_dw
    xr = np.column_stack([block.Xr[:, r] for _, block, r in positions])  # ∂A's nonzeros, (n, nθ)
    cols = [a for a, _, _ in positions]
    dA_u = xr * st.u[C[:, cols]]  # ∂A û
    dA_r = np.column_stack([np.bincount(C[:, a], weights=xr[:, t] * resid, minlength=q)
                            for t, a in enumerate(cols)])  # ∂Aᵀ s
    deta_t = dA_u + A @ fac_obs.solve(dA_r - np.asarray(A.T @ (w_obs[:, None] * dA_u)))
    g_theta = -2.0 * resid @ dA_u + 2.0 * np.sum(w[:, None] * xr * hia[:, cols], axis=0) + deta_t.T @ lev_dw
    return g_beta, g_theta


def beta_scale(design, family, tmap, state, theta) -> np.ndarray:
    """The scale L-BFGS-B moves β on: √(Mⱼⱼ / J), M = XᵀWX − XᵀWA H⁻¹AᵀWX the information on β left
    when the random effects are integrated out (the Laplace Hessian's β block; W the weights at the
    start's modes, A = ZΛ) and J the number of random-effect levels, of the order of the deviance's
    curvature in θ. About 1 for binary data on the orthonormal columns GLMM.fit hands the engine
    (bayesglmm.scaling); for Poisson counts near 10⁹ a within-group slope's is 10⁴ while the
    intercept's stays near 1 (the random intercepts absorb its information): on β unscaled L-BFGS-B
    stopped with θ at its start."""
    w = family.working(state.eta, design.y, design.trials).weight
    X = design.X
    AtWX = np.asarray(tmap.ZLambda(theta).T @ (w[:, None] * X))
    M = np.einsum("ij,i,ij->j", X, w, X) - np.einsum("qj,qj->j", AtWX, np.asarray(state.factor.solve(AtWX)))
    levels = max(1, sum(b.n_levels for b in design.random))
    info = M / levels
    return np.where(np.isfinite(info) & (info > 1e-12), np.sqrt(np.maximum(info, 1e-12)), 1.0)


def fit_laplace(design: Design, family: Family, nagq: int = 1, tol: float = 1e-14, maxiter: int = 2000,
                start=None):
    """Fit a GLMM by maximum likelihood: Laplace (``nagq=1``) or adaptive Gauss–Hermite quadrature.

    Parameters
    ----------
    design, family
        The model, in the engines' parametrization (:mod:`bayesglmm.scaling`).
    nagq : int
        Nodes per dimension (1: the Laplace approximation).
    tol, maxiter
        L-BFGS-B's relative reduction and iterations.
    start : array_like, optional
        The packed (θ, β) to start from, e.g. the estimates of a fit with fewer nodes
        (``fit("agq")`` climbing its ladder of rules); by default identity factors and β of the
        GLM, moved to the joint conditional modes (lme4's start).

    Returns
    -------
    EngineResult
        ``vcov_beta`` and ``vcov_full`` from the Hessian in (θ, β); ``loglik`` with every
        normalising constant; ``state`` the conditional modes at the estimates.
    """
    devfun, tmap = laplace_deviance(design, family, nagq)
    p, n_disp = design.X.shape[1], int(family.has_dispersion)
    if start is None:
        theta0 = tmap.theta0()
        if n_disp:  # φ by moments at the GLM's means, then β at the joint modes with that φ
            start_family = family.with_dispersion(family.dispersion or 1.0)
            beta_glm = glm_start(design, start_family)
            mu = family.link.inverse(design.offset + design.X @ beta_glm)
            log_phi = np.clip(np.log(family.dispersion_start(design.y, mu, design.trials)), *LOG_DISPERSION_BOUNDS)
            at = devfun.at(log_phi).family
            x0 = np.concatenate([theta0, joint_modes_start(design, at, tmap, theta0, glm_start(design, at)), [log_phi]])
        else:
            x0 = np.concatenate([theta0, joint_modes_start(design, family, tmap, theta0, glm_start(design, family))])
    else:
        x0 = np.array(start, dtype=float)
        if x0.shape != (tmap.n_theta + p + n_disp,):
            raise ValueError(f"start must hold θ ({tmap.n_theta}) then β ({p})" + (" then log φ" if n_disp else "")
                             + f", got shape {x0.shape}")
    lower = np.array(list(tmap.lower) + [-np.inf] * (p + n_disp))
    bounds = scipy_bounds(lower)
    if n_disp:
        bounds[-1] = LOG_DISPERSION_BOUNDS
    vg = devfun.value_and_grad
    if vg is not None and vg(x0) is None:
        vg = None
    if vg is None:  # no analytic gradient: central differences, never the optimiser's forward ones
        vg = central_value_and_grad(devfun, lower)
    options = {"ftol": tol, "gtol": 1e-7, "maxiter": maxiter, "maxfun": 20 * maxiter}
    scale = np.ones(len(x0))
    st0 = devfun.state(x0)
    scale[tmap.n_theta:tmap.n_theta + p] = beta_scale(design, devfun.at(x0[-1]).family if n_disp else family, tmap, st0,
                                                      x0[:tmap.n_theta])
    def fun(z):
        f, g = vg(z / scale)
        return f, g / scale

    scaled_bounds = [(None if lo is None else lo * c, None if hi is None else hi * c)
                     for (lo, hi), c in zip(bounds, scale)]
    res = minimize_with_restart(fun, x0 * scale, scaled_bounds, options, jac=True, n_theta=tmap.n_theta)
    res.x = res.x / scale
    best, fallback, extra = powell_fallback(devfun, res, bounds, maxiter, xtol=1e-8, ftol=1e-12)
    n_eval, message = res.nfev + extra, f"L-BFGS-B: {res.message}{fallback}"
    x = best.x
    if best.success and maxiter > 1:
        # L-BFGS-B stops on a small relative reduction, which in a flat, badly scaled valley
        # (e.g. a quadratic term in age) can leave the gradient far from 0: finish by Newton
        x, H, steps, decrement = newton_polish(vg, x, lower, tmap.n_theta)
        if steps:
            message += f"; {steps} Newton step{'s' * (steps > 1)}"
        message += f"; Newton decrement {decrement:.1e}"
        H = H / 2.0  # Hessian of −log L
    else:
        H, decrement = hessian_from_grad(vg, x, lower, tmap.n_theta) / 2.0, float("nan")
    cov = safe_inverse(H)
    p0 = tmap.n_theta
    state = devfun.state(x)
    fitted = devfun.at(x[-1]).family if n_disp else family
    tolerance = decrement_tolerance(design, fitted, state.eta, nagq)
    if tolerance > DECREMENT_TOL:
        message += f" (the deviance's rounding allows {tolerance:.1e})"
    if nagq > 1 and tolerance > 1e-3:
        message += ("; AGQ sums each node's log-likelihood whole, which loses precision with counts this large: "
                    "method='laplace' sums it relative to the saturated fit")
    if decrement < -tolerance:  # gᵀH⁻¹g < 0 beyond rounding: the Hessian is not positive definite there
        message += "; the Hessian is not positive definite at the estimates"
    if n_disp and not LOG_DISPERSION_BOUNDS[0] + 1e-6 < x[-1] < LOG_DISPERSION_BOUNDS[1] - 1e-6:
        message += (f"; the {family.dispersion_name} is at its bound {np.exp(x[-1]):.3g} (no "
                    + ("overdispersion: the data fit the Poisson's or binomial's limit" if x[-1] > 0
                       else "information on it") + ")")
    return EngineResult(theta=x[:p0], beta=x[p0:p0 + p], vcov_beta=cov[p0:p0 + p, p0:p0 + p], vcov_full=cov,
                        loglik=-0.5 * devfun(x), state=state, tmap=tmap,
                        dispersion=float(np.exp(x[-1])) if n_disp else None,
                        converged=bool(best.success) and state.converged and not abs(decrement) > tolerance,
                        message=message, n_eval=int(n_eval), decrement=decrement)
