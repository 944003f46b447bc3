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

import warnings

import numpy as np
from scipy import optimize, stats

from ..results import RESIDUAL, ConvergenceWarning
from .laplace import laplace_deviance
from .optimize import minimize_with_restart, scipy_bounds
from .theta import ThetaMap
from .rescale import centred_blocks
from .working_lmm import ml_deviance_in_sigma

__all__ = ["profile_sd_intervals"]


def _criterion(fit):
    """The fit's deviance on its internal design (:mod:`bayesglmm.scaling`: the intervals must not
    depend on the units of a covariate) as a function of x = (θ on the absolute scale, rest), its
    optimum and bounds, and the fit whose internal result that is (the ML refit of a REML fit). A
    centred block's factor is full there (:class:`~bayesglmm.frequentist.laplace.ThetaMap`), so that
    its user-scale rows are linear in x (:func:`_row_coordinates`)."""
    family = fit.model.family
    if fit.method in ("laplace", "agq") and not family.has_scale:
        scaling, internal = fit._scaling, fit._internal
        dev, tmap = laplace_deviance(scaling.design, family, fit.nagq, full=centred_blocks(scaling))
        x_hat = np.concatenate([_repack(internal.theta, internal.tmap, tmap), internal.beta])
        extra = len(internal.beta)
    elif family.has_scale and fit.method != "pql":
        if fit.method == "reml":  # lme4 profiles the ML deviance of a REML fit
            fit = fit.model.fit("ml")
        scaling, internal = fit._scaling, fit._internal
        design = scaling.design
        tmap = ThetaMap(design, centred_blocks(scaling))
        dev = ml_deviance_in_sigma(tmap, design.X, design.y - design.offset, np.ones(design.nobs))
        x_hat = np.concatenate([_repack(internal.theta, internal.tmap, tmap), [np.log(internal.sigma)]])
        extra = 1
    else:
        raise ValueError(f"method {fit.method!r} maximises no likelihood: it has no profile-likelihood intervals")
    lower = np.array(list(tmap.lower) + [-np.inf] * extra)
    return dev, x_hat, lower, tmap, fit


def _repack(theta, source, target) -> np.ndarray:
    """θ of ThetaMap ``source`` in the layout of ``target`` (the same blocks; a full factor holds a
    lower-triangular one as it is)."""
    out = [L[rows, cols] for L, (rows, cols) in zip(source.factors(theta), target.entries)]
    return np.concatenate(out) if out else np.zeros(0)


def _targets(tmap):
    """(group, term, block, row of the block's factor, positions in x of each of the block's rows)."""
    out, pos = [], 0
    for k, (block, size, (rows, cols)) in enumerate(zip(tmap.blocks, tmap.sizes, tmap.entries)):
        where = [pos + np.flatnonzero(rows == i) for i in range(block.n_terms)]
        for i, term in enumerate(block.terms):
            out.append((block.group, term, k, i, where))
        pos += size
    return out


def _row_coordinates(n, k_block, r, where, tmap, scaling):
    """x = G y for profiling row r of block ``k_block``: y is x with that row replaced by the user's
    row in internal units, y_r = Σ_q (T_rq / T_rr) L̃_q (a term's effect b_r = s T_rr y_r·u), so the
    user's SD is s·T_rr·‖y_r‖. Where T is diagonal y = x (G = I). Returns (G, s·T_rr)."""
    T = scaling.transforms[k_block]
    G = np.eye(n)
    rows, cols = tmap.entries[k_block]
    for q in range(T.shape[0]):
        if q == r or T[r, q] == 0:
            continue
        for a, c in zip(where[r], cols[rows == r]):  # the same column c in row q (a full factor has it)
            G[a, where[q][cols[rows == q] == c][0]] = -T[r, q] / T[r, r]
    return G, scaling.y_scale * T[r, r]


def _pulled_back(value_and_grad, G, y):
    """(value, gradient in y) of a function of x = G y."""
    out = value_and_grad(G @ y)
    if out is None:
        return None
    f, g = out
    return f, G.T @ np.asarray(g, dtype=float)


def profile_sd_intervals(fit, level: float = 0.95, xtol: float = 1e-4) -> list[tuple]:
    """Profile-likelihood intervals of every random-effect SD (and the residual SD of an LMM).

    Returns
    -------
    list of (group, term, low, high)
    """
    dev0, x0_hat, lower0, tmap, fit = _criterion(fit)
    scaling = fit._scaling
    d_min = dev0(x0_hat)
    cutoff = stats.chi2.ppf(level, 1)
    targets = _targets(tmap)
    if fit.model.family.has_scale:
        targets.append((RESIDUAL, RESIDUAL, None, None, None))
    vg0 = getattr(dev0, "value_and_grad", None)
    out = []
    for group, term, k_block, r, where in targets:
        if r is None:  # the residual SD: x[-1] = log σ
            G, unit, row = np.eye(len(x0_hat)), scaling.y_scale, None
        else:
            G, unit = _row_coordinates(len(x0_hat), k_block, r, where, tmap, scaling)
            row = where[r]
        moved = np.any(G != np.eye(len(G)), axis=1)  # coordinates whose meaning changes: the row's
        x_hat = np.linalg.solve(G, x0_hat)
        lower = np.where(moved, -np.inf, lower0)

        def dev(y, G=G):
            return dev0(G @ y)

        vg = None if vg0 is None else (lambda y, G=G: _pulled_back(vg0, G, y))
        if row is None:
            free = np.arange(len(x_hat) - 1)
            s_hat = float(np.exp(x_hat[-1]))
        else:
            free = np.setdiff1d(np.arange(len(x_hat)), row)
            s_hat = float(np.linalg.norm(x_hat[row]))
        diag = None
        if row is not None:  # the entry whose sign is fixed: a lower-triangular row's diagonal (bounded at
            # 0); in a full factor any entry (flipping a column keeps LLᵀ): the largest
            rows_k, cols_k = tmap.entries[k_block]
            full = k_block in centred_blocks(scaling)
            diag = int(np.argmax(np.abs(x_hat[row]))) if full else int(np.flatnonzero(cols_k[rows_k == r] == r)[0])
        bounds = scipy_bounds(lower[free])
        if row is not None and len(row) > 1:
            d0 = x_hat[row] / s_hat if s_hat > 0 else np.eye(len(row))[diag]
            bounds += [(None, None)] * len(row)
        else:
            d0 = np.empty(0)
        start = np.concatenate([x_hat[free], d0])

        def build(v, s, free=free, row=row, diag=diag, x_hat=x_hat):
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

        use_grad = vg is not None and row is not None and vg(x_hat) is not None

        def objective(v, s, free=free, row=row, diag=diag, build=build, dev=dev, vg=vg, use_grad=use_grad):
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

        try:
            low, high = _interval(excess, s_hat, row is None, xtol)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError) as err:
            # the constrained refits failed numerically: typically the SD of an intercept at a covariate's
            # zero far outside the data (a random slope on a year), whose profile runs into factors that
            # are not positive definite in floating point. An interval is not given rather than a wrong one.
            warnings.warn(f"no profile interval for the SD of {term!r} in group {group!r}: its constrained refits "
                          f"failed ({type(err).__name__}: {err}); if a random slope's covariate is far from 0 "
                          "(a year), centre it so that the intercept's SD is at a value inside the data",
                          ConvergenceWarning, stacklevel=3)
            out.append((group, term, np.nan, np.nan))
            continue
        out.append((group, term, low * unit, np.inf if high is None else high * unit))
    return out


def _interval(excess, s_hat, residual: bool, xtol: float):
    """The interval's ends, {s : excess(s) ≤ 0}, by Brent's method; the upper end bracketed by doubling
    (None when 40 doublings do not reach the cut-off)."""
    if s_hat <= 1e-8 or (not residual and excess(0.0) <= 0):
        low = 0.0
    else:
        a = s_hat * 1e-3 if residual else 0.0
        low = optimize.brentq(excess, a, s_hat, xtol=xtol * max(s_hat, 1e-2)) if excess(a) > 0 else a
    high, step = None, max(s_hat, 0.1)
    for _ in range(40):  # bracket the upper end
        if excess(s_hat + step) > 0:
            high = optimize.brentq(excess, s_hat, s_hat + step, xtol=xtol * max(s_hat, 1e-2))
            break
        step *= 2
    return low, high
