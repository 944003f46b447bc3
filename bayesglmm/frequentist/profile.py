"""Profile-likelihood intervals for the random-effect SDs of an ML fit (lme4's ``confint(fit, method = "profile")``).

For one SD s of a random term the profile deviance is

    D(s) = min over every other parameter of −2 log L,

and the interval at level 1 − α is {s ≥ 0 : D(s) − D(ŝ) ≤ χ²₁(1 − α)}. For a term
inside a correlated block, its row of the factor L is written s · d / ‖d‖ and the
direction d is optimized with the rest, so the correlations stay free. A lower end of
exactly 0 means the deviance at s = 0 is within the cut-off (the SD is not
distinguishable from 0 at that level).

Laplace and AGQ fits profile their own (θ, β) deviance; LMM fits profile the ML
deviance in (θ, log σ) with β profiled out, which also gives the residual SD's interval.
REML fits are profiled on the ML deviance too, as lme4's ``profile.merMod`` does, so the
intervals equal ``confint(lmer(...))`` (sleepstudy: .sig01 14.381–37.716).
PQL and GEE maximise no likelihood: they have no profile.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from ..results import RESIDUAL
from .laplace import ThetaMap, laplace_deviance, minimize_with_restart
from .pql import working_lmm_deviance

__all__ = ["profile_sd_intervals"]


def _criterion(fit):
    """The fit's deviance on its internal design (:mod:`bayesglmm.scaling`: the intervals must not
    depend on the units of a covariate) as a function of x = (θ on the absolute scale, rest), its
    optimum and bounds, and the fit whose internal result that is (the ML refit of a REML fit)."""
    family = fit.model.family
    if fit.method in ("laplace", "agq") and not family.has_scale:
        design, internal = fit._scaling.design, fit._internal
        dev, tmap = laplace_deviance(design, family, fit.nagq)
        x_hat = np.concatenate([internal.theta, internal.beta])
        extra = len(internal.beta)
    elif family.has_scale and fit.method != "pql":
        if fit.method == "reml":  # lme4 profiles the ML deviance of a REML fit
            fit = fit.model.fit("ml")
        design, internal = fit._scaling.design, fit._internal
        tmap = ThetaMap(design)
        X, z, w = design.X, design.y - design.offset, np.ones(design.nobs)
        dof = X.shape[0]
        nt = tmap.n_theta

        def dev(x):
            sigma2 = np.exp(2 * x[nt])
            d, _, _, s2_hat, _ = working_lmm_deviance(X, tmap.ZLambda(x[:nt] / np.sqrt(sigma2)), z, w, True,
                                                      reml=False)
            return float(d - dof * np.log(s2_hat) + dof * np.log(2 * np.pi * sigma2) + dof * s2_hat / sigma2)

        x_hat = np.concatenate([internal.theta, [np.log(internal.sigma)]])
        extra = 1
    else:
        raise ValueError(f"method {fit.method!r} maximises no likelihood: it has no profile-likelihood intervals")
    lower = np.array(list(tmap.lower) + [-np.inf] * extra)
    return dev, x_hat, lower, tmap, fit


def _targets(tmap, scaling):
    """(group, term, positions in x of the term's row of L, index of its diagonal within the row,
    the factor that takes the term's internal SD to the user's)."""
    out, pos = [], 0
    for k, (block, size, (rows, cols)) in enumerate(zip(tmap.blocks, tmap.sizes, tmap.entries)):
        for i, term in enumerate(block.terms):
            where = np.flatnonzero(rows == i)
            out.append((block.group, term, pos + where, int(np.flatnonzero(cols[where] == i)[0]),
                        float(scaling.effect_scale(k)[i])))
        pos += size
    return out


def profile_sd_intervals(fit, level: float = 0.95, xtol: float = 1e-4) -> list[tuple]:
    """Profile-likelihood intervals of every random-effect SD (and the residual SD of an LMM).

    Returns
    -------
    list of (group, term, low, high)
    """
    dev, x_hat, lower, tmap, fit = _criterion(fit)
    d_min = dev(x_hat)
    cutoff = stats.chi2.ppf(level, 1)
    targets = _targets(tmap, fit._scaling)
    if fit.model.family.has_scale:
        targets.append((RESIDUAL, RESIDUAL, None, None, fit._scaling.y_scale))
    out = []
    for group, term, row, diag, unit in targets:
        if row is None:  # the residual SD: x[-1] = log σ
            free = np.arange(len(x_hat) - 1)
            s_hat = float(np.exp(x_hat[-1]))
        else:
            free = np.setdiff1d(np.arange(len(x_hat)), row)
            s_hat = float(np.linalg.norm(x_hat[row]))
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower[free]]
        if row is not None and len(row) > 1:
            d0 = x_hat[row] / s_hat if s_hat > 0 else np.eye(len(row))[diag]
            bounds += [(None, None)] * len(row)
        else:
            d0 = np.empty(0)
        start = np.concatenate([x_hat[free], d0])

        def build(v, s):
            x = x_hat.copy()
            x[free] = v[:len(free)]
            if row is None:
                x[-1] = np.log(s)
            elif len(row) == 1:
                x[row] = s
            else:
                d = v[len(free):].copy()
                d[diag] = abs(d[diag])
                x[row] = s * d / max(np.linalg.norm(d), 1e-300)
            return x

        vg = getattr(dev, "value_and_grad", None)
        use_grad = vg is not None and row is not None and vg(x_hat) is not None

        def objective(v, s):
            if not use_grad:
                return dev(build(v, s))
            f, g = vg(build(v, s))  # the free coordinates are a subset of x: their gradient is g[free]
            if len(row) == 1:
                return f, g[free]
            # the row x[row] = s·d̃/‖d̃‖ (d̃ = d with |d[diag]|): its Jacobian in d is s(I − uuᵀ)/‖d̃‖
            d = v[len(free):]
            sign = np.ones(len(d))
            sign[diag] = -1.0 if d[diag] < 0 else 1.0
            dt = d * sign
            norm = max(np.linalg.norm(dt), 1e-300)
            u, gr = dt / norm, g[row]
            return f, np.concatenate([g[free], s * (gr - u * (u @ gr)) / norm * sign])

        solved = {}  # s -> the other parameters' optimum there: the warm start for the nearest s

        def excess(s):
            near = min(solved, key=lambda t: abs(t - s)) if solved else None
            x0 = start if near is None else solved[near]
            # a diagonal θ of another term stuck at 0 is probed, as in the fit (the profile must
            # not stop on a false boundary either)
            res = minimize_with_restart(lambda v: objective(v, s), x0, bounds,
                                        {"ftol": 1e-12, "gtol": 1e-7, "maxiter": 500}, jac=use_grad,
                                        n_theta=int(np.sum(free < tmap.n_theta)))
            solved[s] = res.x
            return max(res.fun - d_min, 0.0) - cutoff

        if s_hat <= 1e-8 or (row is not None and excess(0.0) <= 0):
            low = 0.0
        else:
            a = s_hat * 1e-3 if row is None else 0.0
            low = optimize.brentq(excess, a, s_hat, xtol=xtol * max(s_hat, 1e-2)) if excess(a) > 0 else a
        high, step = None, max(s_hat, 0.1)
        for _ in range(40):  # bracket the upper end
            if excess(s_hat + step) > 0:
                high = optimize.brentq(excess, s_hat, s_hat + step, xtol=xtol * max(s_hat, 1e-2))
                break
            step *= 2
        out.append((group, term, low * unit, np.inf if high is None else high * unit))
    return out
