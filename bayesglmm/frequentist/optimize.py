"""The optimiser of every likelihood engine: L-BFGS-B that does not stop on a false boundary
(:func:`minimize_with_restart`), a Newton finish with the Hessian from differences of the analytic
gradient (:func:`newton_polish`, :func:`hessian_from_grad`), central-difference gradients where no
analytic one fits in memory, and the convergence test (:data:`DECREMENT_TOL`,
:func:`decrement_tolerance`)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg, optimize

__all__ = ["scipy_bounds", "powell_fallback", "DECREMENT_TOL", "decrement_tolerance", "central_value_and_grad", "safe_inverse", "hessian_from_grad",
           "newton_polish", "BOUNDARY_PROBES", "minimize_with_restart"]


#: the largest Newton decrement gᵀH⁻¹g of the deviance at which a Laplace/AGQ fit counts as
#: converged: at most 1e-6 of log-likelihood left to gain (gᵀH⁻¹g / 4)
DECREMENT_TOL = 4e-6


def decrement_tolerance(design, family, eta, nagq: int = 1) -> float:
    """:data:`DECREMENT_TOL`, or more where the deviance itself cannot be computed that closely: a
    sum of terms of size Σ|ℓᵢ| carries a rounding error of about ε·Σ|ℓᵢ|, and the decrement is noise
    below 100 times it. Laplace sums the log-likelihood relative to the saturated fit
    (:meth:`Family.loglik_relative`, of order 1 a row); AGQ's node sums hold the whole terms, and with
    Poisson counts near 10⁷ (Σ|ℓᵢ| ≈ 3·10¹⁰ for 120 rows) their rounding is 10⁻⁵."""
    mu = family.link.inverse(eta)
    if nagq == 1:
        size = float(np.sum(np.abs(family.loglik_relative(design.y, mu, design.trials))))
    else:
        size = float(np.sum(np.abs(family.loglik_kernel(design.y, mu, design.trials)))
                     + np.sum(np.abs(family.loglik_constant(design.y, design.trials))))
    return max(DECREMENT_TOL, 100.0 * np.finfo(float).eps * size)


def central_value_and_grad(devfun, lower, h: float = 1e-6):
    """``value_and_grad`` by central differences of ``devfun`` (2 evaluations a coordinate, steps
    h·max(1, |x|), one-sided at θ's lower bounds), for the deviances whose analytic gradient would
    not fit in memory (H⁻¹ at A's nonzeros, :meth:`ThetaMap.solved_rows`). With PIRLS converged to
    1e-11 the deviance is smooth to about 1e-12, so the gradient is good to about 1e-6: enough for
    L-BFGS-B and the Newton finish to reach the optimum, which forward differences at the
    optimiser's default 1e-8 are not (they stopped a correlated-slopes AGQ fit 1.3e-4 short in
    log-likelihood, before AGQ had its exact gradient)."""
    lower = np.asarray(lower, dtype=float)

    def value_and_grad(x):
        x = np.asarray(x, dtype=float)
        f0 = float(devfun(x))
        g = np.empty(len(x))
        for i in range(len(x)):
            step = h * max(1.0, abs(x[i]))
            up, down = x.copy(), x.copy()
            up[i] += step
            if x[i] - step < lower[i]:  # forward, second order: (−3f₀ + 4f₁ − f₂) / 2h
                up2 = x.copy()
                up2[i] += 2 * step
                g[i] = (-3.0 * f0 + 4.0 * devfun(up) - devfun(up2)) / (2 * step)
            else:
                down[i] -= step
                g[i] = (devfun(up) - devfun(down)) / (2 * step)
        devfun(x)  # leave the warm start at x
        return f0, g

    return value_and_grad


def safe_inverse(H) -> np.ndarray:
    """H⁻¹, or a matrix of NaN when H is singular or holds NaN/inf (e.g. a Hessian taken
    where the likelihood is undefined): the fit then reports NaN standard errors and
    ``MLFit.flags`` says why, instead of raising from inside LAPACK."""
    H = np.asarray(H, dtype=float)
    if not np.all(np.isfinite(H)):
        return np.full(H.shape, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return linalg.inv(H)
        except (linalg.LinAlgError, ValueError):
            return np.full(H.shape, np.nan)


def hessian_from_grad(fg, x, lower, nt, h=1e-4):
    """Central differences of the analytic gradient ``fg(x) -> (value, gradient)``, symmetrized:
    2k gradient evaluations (each one PIRLS), steps kept inside θ's lower bounds.

    The steps are h·max(1, |xᵢ|), and no more than 10⁻³ of the standard error 1/√Hᵢᵢ that a first
    pass implies: where the curvature is large (Poisson counts near 10⁷: Hᵢᵢ ≈ 10⁹) a step relative
    to |xᵢ| reaches far beyond the quadratic region, and the differences gave an indefinite Hessian
    (NaN standard errors) at a true optimum. A second pass runs only when a step must shrink."""
    k = len(x)
    steps = h * np.maximum(1.0, np.abs(x))

    def differences(steps):
        xs = x.copy()
        for i in range(nt):
            if np.isfinite(lower[i]) and xs[i] - steps[i] < lower[i]:
                xs[i] = lower[i] + steps[i]
        H = np.zeros((k, k))
        for j in range(k):
            e = np.zeros(k)
            e[j] = steps[j]
            H[:, j] = (fg(xs + e)[1] - fg(xs - e)[1]) / (2 * steps[j])
        # symmetric: each pair from the column of the larger step, whose difference the gradient's own
        # rounding disturbs least (equal steps: the mean of the two)
        wider = steps[None, :] > steps[:, None]
        return np.where(wider, H, np.where(wider.T, H.T, (H + H.T) / 2))

    H = differences(steps)
    curv = np.abs(np.diag(H))
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(curv > 0, 1e-3 / np.sqrt(curv), np.inf)
    if np.all(np.isfinite(H)) and np.any(steps > 30.0 * bound):
        H = differences(np.minimum(steps, bound))
    fg(x)  # leave the warm start at x
    return H


def newton_polish(fg, x, lower, nt, decrement=1e-8, max_steps=6):
    """Newton steps on the deviance from an optimiser's end point, with the Hessian from gradient
    differences (which the SEs need anyway), while the Newton decrement gᵀH⁻¹g — twice the
    deviance still to gain — is above ``decrement``; θ stays within its bounds (a θ on its bound
    with the gradient pushing outward is held there). Returns (x, the Hessian at x, steps taken,
    the decrement at x: NaN where H is singular there)."""
    f, g = fg(x)
    steps, gain = 0, float("nan")
    while True:
        H = hessian_from_grad(fg, x, lower, nt)
        held = np.zeros(len(x), dtype=bool)
        held[:nt] = (x[:nt] <= lower[:nt] + 1e-10) & (g[:nt] > 0)
        free = ~held
        try:
            step = np.zeros(len(x))
            step[free] = np.linalg.solve(H[np.ix_(free, free)], g[free])
        except np.linalg.LinAlgError:
            gain = float("nan")
            break
        gain = float(g @ step)
        if steps >= max_steps or not np.isfinite(gain) or gain < decrement:  # converged (or not a descent)
            break
        t, accepted = 1.0, False
        while t > 1e-4:
            xn = x - t * step
            xn[:nt] = np.maximum(xn[:nt], lower[:nt])
            fn, gn = fg(xn)
            if fn < f:
                accepted = True
                break
            t /= 2
        if not accepted:
            break
        x, f, g, steps = xn, fn, gn, steps + 1
    fg(x)  # leave the warm start at x
    return x, H, steps, gain


#: where a θ stuck on its bound 0 is probed, as multiples of max(its start, 1)
BOUNDARY_PROBES = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def _value(fun, x):
    out = fun(x)
    return float(out[0] if isinstance(out, tuple) else out)


def minimize_with_restart(fun, x0, bounds, options, jac, n_theta, max_restarts: int = 3):
    """L-BFGS-B that does not stop on a false boundary: a diagonal θ at its bound 0 is probed
    inside, and the search restarted from the best probe that lowers the criterion.

    The criterion depends on a scalar block's θ (and on a diagonal θ of a block whose other
    entries are 0) through θ², so its derivative is exactly 0 at θ = 0 *whatever the data*: θ = 0
    is a stationary point, a minimum along that axis or a maximum. L-BFGS-B, reaching the bound,
    sees a zero projected gradient and stops in either case, so a variance component the data
    support can come out as 0 (on 150 balanced subjects simulated without a random slope, the
    uncorrelated slope's SD fit as 0 although the likelihood peaked at 1.1, 0.67 higher in log
    likelihood). The boundary is accepted only when no probe θ = h·max(θ₀, 1), h in
    :data:`BOUNDARY_PROBES`, lowers the criterion — a minimum along the axis, as a
    derivative-free optimiser (lme4's bobyqa) would find.
    """
    res = optimize.minimize(fun, x0, jac=jac, method="L-BFGS-B", bounds=bounds, options=options)
    lower = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
    start = np.maximum(np.abs(np.asarray(x0, dtype=float)[:n_theta]), 1.0)
    nfev = res.nfev
    for _ in range(max_restarts):
        stuck = [t for t in range(n_theta) if lower[t] == 0 and res.x[t] <= 1e-10]
        best_x, best_f = None, res.fun - 1e-10 * max(1.0, abs(res.fun))
        for t in stuck:
            for h in BOUNDARY_PROBES:
                x1 = res.x.copy()
                x1[t] = h * start[t]
                f1 = _value(fun, x1)
                nfev += 1
                if f1 < best_f:
                    best_x, best_f = x1, f1
        if best_x is None:
            break
        res2 = optimize.minimize(fun, best_x, jac=jac, method="L-BFGS-B", bounds=bounds, options=options)
        nfev += res2.nfev
        if res2.fun >= res.fun:
            break
        res = res2
    res.nfev = nfev
    return res


def scipy_bounds(lower) -> list[tuple]:
    """SciPy's bounds from the lower bounds of a parameter vector (−inf: none; no upper bounds)."""
    return [(float(lo) if np.isfinite(lo) else None, None) for lo in lower]


def powell_fallback(fun, res, bounds, maxiter: int, xtol: float, ftol: float, accept_success: bool = False):
    """``res`` (L-BFGS-B's result), or, when it failed otherwise than by using up ``maxiter`` (then the
    fit is reported as not converged), a derivative-free Powell search from where it stopped (e.g. an
    ABNORMAL line search on a flat criterion). Returns (the better result — Powell's when it is no
    worse, or with ``accept_success`` whenever it succeeded —, the message to add, its evaluations)."""
    if res.success or res.status == 1:
        return res, "", 0
    res2 = optimize.minimize(fun, res.x, method="Powell", bounds=bounds,
                             options={"xtol": xtol, "ftol": ftol, "maxiter": maxiter, "maxfev": 20 * maxiter})
    better = res2.fun <= res.fun or (accept_success and res2.success)
    return (res2 if better else res), f"; Powell: {res2.message}", int(res2.nfev)
