"""Profile-likelihood intervals for the random-effect SDs and correlations of an ML fit (lme4's
``confint(fit, method = "profile")``, its ``.sig`` and ``.cor`` rows).

For one SD s of a random term the profile deviance is

    D(s) = min over every other parameter of −2 log L,

and the interval at level 1 − α is {s ≥ 0 : D(s) − D(ŝ) ≤ χ²₁(1 − α)}. For a term
inside a correlated block, its row of the factor L is written s · d / ‖d‖ and the
direction d is optimized with the rest, so the correlations stay free. A lower end of
exactly 0 means the deviance at s = 0 is within the cut-off (the SD is not
distinguishable from 0 at that level).

For a correlation ρ of terms i and j of one block, D(ρ) = min of −2 log L subject to the
correlation of rows i and j of the user's factor being ρ, and the interval is {ρ ∈ [−1, 1] :
D(ρ) − D(ρ̂) ≤ χ²₁(1 − α)}, found by Brent's method on each side of ρ̂, an end at ±1 when the
cut-off is not reached there (sleepstudy: −0.4815 to 0.6850, as lme4). As for the SDs, D is taken
to rise away from ρ̂ on each side: ±1 is tested first, so a profile that crossed the cut-off and
came back under it before ±1 (not seen; lme4, walking outward, would stop at the crossing) would
give ±1, and one that crosses several times gives one of the crossings. The constraint is built
into the coordinates rather than handed to a constrained optimiser (SLSQP): the block's factor is
made full in x, so that its user-scale factor T L̃ may be any square root of TΣ̃Tᵀ, and written
D Pᵀ M with P putting i and j first, D the user's SDs at the fit and M lower triangular with rows
a·e₀ and c·(ρ, √(1 − ρ²), 0, …) and the rows after those free — every covariance whose (i, j)
correlation is ρ has that form (the Cholesky factor of PΣPᵀ). x is then linear in the free
parameters at each ρ (:class:`_CorrCoordinates`), so the bounded quasi-Newton refits of the SD
profile apply with the exact gradient, every refit is feasible, and ρ = ±1 is an ordinary point.
Each refit starts from the optimum at the nearest ρ already solved; in a block of three or more
terms also from the fit, the better kept (the warm start alone was seen to stop in a worse local
minimum there).

Laplace and AGQ fits profile their own (θ, β) deviance — (θ, β, log φ) for a dispersion family,
which also gives the interval of its θ or shape (an upper end of inf when the Poisson's or
binomial's limit is within the cut-off); LMM fits profile the ML
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
from .theta import ThetaMap, lower_factor
from .rescale import centred_blocks
from .working_lmm import ml_deviance_in_sigma

__all__ = ["profile_sd_intervals", "profile_corr_intervals", "profile_intervals"]


def _criterion(fit, extra_full=()):
    """The fit's deviance on its internal design (:mod:`bayesglmm.scaling`: the intervals must not
    depend on the units of a covariate) as a function of x = (θ on the absolute scale, rest), its
    optimum and bounds, and the fit whose internal result that is (the ML refit of a REML fit). A
    centred block's factor is full there (:class:`~bayesglmm.frequentist.laplace.ThetaMap`), so that
    its user-scale rows are linear in x (:func:`_row_coordinates`); so are the blocks ``extra_full``
    (a correlation's, :class:`_CorrCoordinates`)."""
    family = fit.model.family
    if fit.method in ("laplace", "agq") and not family.has_scale:
        scaling, internal = fit._scaling, fit._internal
        dev, tmap = laplace_deviance(scaling.design, family, fit.nagq, full=_full(scaling, extra_full))
        disp = [np.log(internal.dispersion)] if family.has_dispersion else []  # log φ, last
        x_hat = np.concatenate([_repack(internal.theta, internal.tmap, tmap), internal.beta, disp])
        extra = len(internal.beta) + len(disp)
    elif family.has_scale and fit.method != "pql":
        if fit.method == "reml":  # lme4 profiles the ML deviance of a REML fit
            fit = fit.model.fit("ml")
        scaling, internal = fit._scaling, fit._internal
        design = scaling.design
        tmap = ThetaMap(design, _full(scaling, extra_full))
        dev = ml_deviance_in_sigma(tmap, design.X, design.y - design.offset, np.ones(design.nobs))
        x_hat = np.concatenate([_repack(internal.theta, internal.tmap, tmap), [np.log(internal.sigma)]])
        extra = 1
    else:
        raise ValueError(f"method {fit.method!r} maximises no likelihood: it has no profile-likelihood intervals")
    lower = np.array(list(tmap.lower) + [-np.inf] * extra)
    return dev, x_hat, lower, tmap, fit


def _full(scaling, extra_full) -> tuple[int, ...]:
    """The blocks whose factor is full in x: the centred ones and ``extra_full``."""
    return tuple(sorted(set(centred_blocks(scaling)) | set(extra_full)))


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
    family = fit.model.family
    if family.has_scale:
        targets.append((RESIDUAL, RESIDUAL, None, None, None))
    elif family.has_dispersion:  # θ or the shape: x[-1] = log φ, as an LMM's log σ
        targets.append((RESIDUAL, family.dispersion_name, None, None, None))
    vg0 = getattr(dev0, "value_and_grad", None)
    out = []
    for group, term, k_block, r, where in targets:
        if r is None:  # the residual SD, x[-1] = log σ; or a dispersion, x[-1] = log φ (scale-free)
            G, unit, row = np.eye(len(x0_hat)), (1.0 if family.has_dispersion else scaling.y_scale), None
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

        # a dispersion's profile (x[-1] = log φ held) uses the deviance's gradient too; an LMM's σ, differences
        use_grad = (vg is not None and (row is not None or family.has_dispersion) and vg(x_hat) is not None)

        def objective(v, s, free=free, row=row, diag=diag, build=build, dev=dev, vg=vg, use_grad=use_grad):
            if not use_grad:
                return dev(build(v, s))
            f, g = vg(build(v, s))  # the free coordinates are a subset of x: their gradient is g[free]
            if row is None or len(row) == 1:
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


def _likelihood_fit(fit):
    """The fit whose likelihood is profiled: a REML fit's ML refit (as lme4's ``profile.merMod``), else the fit."""
    return fit.model.fit("ml") if fit.method == "reml" else fit


def profile_intervals(fit, level: float = 0.95, xtol: float = 1e-4) -> list[tuple]:
    """Profile-likelihood intervals of every SD (:func:`profile_sd_intervals`) and every correlation
    (:func:`profile_corr_intervals`), a REML fit refitted by ML once for both.

    Returns
    -------
    list of tuple
        (group, term, low, high) for the SDs, then (group, term, term2, low, high) for the correlations.
    """
    fit = _likelihood_fit(fit)
    # refits far along a profile overflow on the way (e^{log σ}, the optimiser's trial steps): a refit that
    # fails is reported by its own ConvergenceWarning and gives NaN, so NumPy's warnings are noise here
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return profile_sd_intervals(fit, level, xtol) + profile_corr_intervals(fit, level)


def _corr_pairs(fit):
    """(block, i, j) of every correlation: each pair of terms of a block that has correlations."""
    return [(k, i, j) for k, block in enumerate(fit.model.design.random) if block.has_correlation
            for i in range(block.n_terms) for j in range(i + 1, block.n_terms)]


class _CorrCoordinates:
    """x of the deviance as a linear function of free parameters v at a fixed correlation ρ of the
    user's terms i and j of block k (see the module docstring).

    Block k's factor is full in x, so its user-scale factor T L̃ may be any square matrix M' with
    M'M'ᵀ = TΣ̃Tᵀ. With P the permutation that puts i and j first and D the user's SDs at the fit (in
    internal units, so that v is of order 1), M' = D Pᵀ M with M lower triangular, row 0 = a·e₀, row
    1 = c·(ρ, √(1 − ρ²), 0, …), and the rows after those free: every Σ whose (i, j) correlation is ρ
    is of that form (the Cholesky factor of PΣPᵀ). So L̃ = T⁻¹ D Pᵀ M is linear in v = (a, c, the
    lower triangle of rows 2…, every other coordinate of x), which keeps the gradient exact.
    """

    def __init__(self, x_hat, lower, tmap, k, i, j, T):
        n = tmap.blocks[k].n_terms
        start = int(sum(tmap.sizes[:k]))
        self.seg = np.arange(start, start + tmap.sizes[k])
        self.rows, self.cols = tmap.entries[k]
        self.order = [i, j] + [t for t in range(n) if t not in (i, j)]
        self.tril = [(a, b) for a in range(2, n) for b in range(a + 1)]
        self.rest = np.setdiff1d(np.arange(len(x_hat)), self.seg)
        L_hat = np.zeros((n, n))
        L_hat[self.rows, self.cols] = x_hat[self.seg]
        U = T @ L_hat  # the user's factor in internal units
        norms = np.linalg.norm(U, axis=1)
        self.B = np.linalg.solve(T, np.diag(np.where(norms > 1e-8, norms, 1.0)))[:, self.order]  # T⁻¹ D Pᵀ
        C, _ = lower_factor(np.linalg.solve(self.B, L_hat))  # M at the fit (its Cholesky form)
        self.rho_hat = float(C[1, 0] / np.hypot(C[1, 0], C[1, 1])) if np.hypot(C[1, 0], C[1, 1]) > 0 else np.nan
        self.n_block = 2 + len(self.tril)
        self.v_hat = np.concatenate([[C[0, 0], np.hypot(C[1, 0], C[1, 1])], [C[a, b] for a, b in self.tril],
                                     x_hat[self.rest]])
        self.lower = np.concatenate([[0.0, 0.0], [0.0 if a == b else -np.inf for a, b in self.tril],
                                     lower[self.rest]])
        self.n, self.x_hat = n, x_hat

    def jacobian(self, rho):
        """J(ρ) with block k's part of x = J(ρ) v[:n_block]."""
        J = np.empty((len(self.seg), self.n_block))
        for q in range(self.n_block):
            M = np.zeros((self.n, self.n))
            if q == 0:
                M[0, 0] = 1.0
            elif q == 1:
                M[1, :2] = rho, np.sqrt(max(1.0 - rho * rho, 0.0))
            else:
                M[self.tril[q - 2]] = 1.0
            J[:, q] = (self.B @ M)[self.rows, self.cols]
        return J

    def x(self, v, J):
        """x at v (J from :meth:`jacobian`)."""
        x = self.x_hat.copy()
        x[self.seg] = J @ v[:self.n_block]
        x[self.rest] = v[self.n_block:]
        return x


def profile_corr_intervals(fit, level: float = 0.95, xtol: float = 1e-5) -> list[tuple]:
    """Profile-likelihood intervals of every random-effect correlation (lme4's ``.cor`` rows of
    ``confint(fit, method = "profile")``), on [−1, 1].

    Returns
    -------
    list of (group, term, term2, low, high)
    """
    fit = _likelihood_fit(fit)
    cutoff = stats.chi2.ppf(level, 1)
    out = []
    for k, i, j in _corr_pairs(fit):
        block = fit.model.design.random[k]
        dev0, x_hat, lower, tmap, fit = _criterion(fit, extra_full=(k,))
        coords = _CorrCoordinates(x_hat, lower, tmap, k, i, j, fit._scaling.transforms[k])
        try:
            # v's θ-like entries (probed at a bound 0) come first: block k's, then the other blocks'
            n_theta = coords.n_block + tmap.n_theta - len(coords.seg)
            low, high = _corr_interval(dev0, dev0(x_hat), coords, cutoff, n_theta, xtol)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError) as err:
            warnings.warn(f"no profile interval for the correlation of {block.terms[i]!r} and {block.terms[j]!r} "
                          f"in group {block.group!r}: its constrained refits failed ({type(err).__name__}: {err})",
                          ConvergenceWarning, stacklevel=3)
            low = high = np.nan
        out.append((block.group, block.terms[i], block.terms[j], low, high))
    return out


def _corr_interval(dev0, d_min, coords, cutoff, n_theta, xtol):
    """The interval's ends {ρ : D(ρ) − D(ρ̂) ≤ cut-off} by Brent's method on each side of ρ̂, ±1 when
    the cut-off is not reached there."""
    vg0 = getattr(dev0, "value_and_grad", None)
    use_grad = vg0 is not None and vg0(coords.x_hat) is not None
    bounds = scipy_bounds(coords.lower)
    solved = {}  # ρ -> the free parameters' optimum: the warm start for the nearest ρ

    def excess(rho):
        J = coords.jacobian(rho)

        def objective(v):
            x = coords.x(v, J)
            if not use_grad:
                return dev0(x)
            f, g = vg0(x)
            g = np.asarray(g, dtype=float)
            return f, np.concatenate([J.T @ g[coords.seg], g[coords.rest]])

        near = min(solved, key=lambda t: abs(t - rho)) if solved else None
        starts = [coords.v_hat] if near is None else [solved[near]]
        if near is not None and coords.n > 2:  # a third term's correlations can leave the warm start in a
            starts.append(coords.v_hat)  # worse local minimum: the fit's point is tried as well
        res = min((minimize_with_restart(objective, x0, bounds, {"ftol": 1e-12, "gtol": 1e-7, "maxiter": 500},
                                         jac=use_grad, n_theta=n_theta) for x0 in starts), key=lambda r: r.fun)
        if not np.all(np.isfinite(res.x)):
            raise FloatingPointError("a refit left the finite numbers")
        solved[rho] = res.x
        return max(res.fun - d_min, 0.0) - cutoff

    rho_hat = coords.rho_hat
    if not np.isfinite(rho_hat):
        return np.nan, np.nan
    ends = []
    for edge in (-1.0, 1.0):
        if abs(edge - rho_hat) < 1e-10 or excess(edge) <= 0:
            ends.append(edge)
        else:
            a, b = sorted((edge, rho_hat))
            # xtol relative to the bracket: a correlation within 1e-5 of ±1 (the intercept's correlation with a
            # slope whose covariate is far from 0) has its whole side of the interval inside an absolute xtol
            ends.append(optimize.brentq(excess, a, b, xtol=min(xtol, 1e-3 * (b - a))))
    return ends[0], ends[1]
