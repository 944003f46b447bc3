"""Exact draws of the random effects from their conditional posteriors, after NUTS has sampled the
marginal model (:func:`bayesglmm.bayes.marginalized.draw_random_effects`): per draw of (β, SD) and
group, a scalar effect by rejection from an envelope built once per group, a block of k terms by
rejection from N(û, I) or Metropolis–Hastings steps; compiled, a chain's slice per thread (the
kernels release the GIL, a seed per slice so the draws do not depend on the threads)."""

from __future__ import annotations

import numba
import numpy as np

from ..kernels import BINOMIAL_LOGIT, POISSON_LOG, row_kernel
from .quadrature import group_logf, group_logf_grad, group_mode, intercept_exponentials, vector_mode

__all__ = ["conditional_draws", "conditional_draws_vector"]


@numba.njit(cache=True, error_model="numpy", nogil=True)
def conditional_draws(X, offset, xr, y, n, start, group_pattern, beta, sd, seed, kind, phi):
    """Exact draws of each group's standardised effect u_j from p(u_j | y, β_d, s_d), one per
    (β, s) draw, by rejection from a piecewise-exponential envelope.

    log p(u | y) = Σᵢ κ(baseᵢ + aᵢ u) − u²/2 + const is strictly concave for the canonical links, so
    it lies below its tangents. The envelope is the minimum of three: at the mode m (flat) and at
    m ± δ, δ one conditional SD (the curvature's); the tangents meet at z₁ < m < z₂, the envelope
    is exponential on (−∞, z₁] and [z₂, ∞) and flat between, a piece is chosen by its mass, a
    point drawn inside it by inversion and accepted with probability exp(log p − envelope): an
    exact draw, about 1.2 evaluations of log p per draw for near-Gaussian conditionals.

    The data are one representative group per pattern (:func:`~bayesglmm.design.distinct_groups`),
    rows sorted by pattern, pattern p's rows ``start[p]:start[p+1]``; ``group_pattern[j]`` is the
    pattern of group j. Groups of one pattern share the envelope (built once per pattern and
    draw); Numba's generator (the calling thread's: the GIL is released, so chunks of the draws can
    run in threads) is seeded with ``seed``. ``phi`` (D,): a dispersion family's φ per draw (else
    unused). The negative binomial (log link) and the Gamma (log) are log-concave in η as well; the
    beta-binomial with n > 1 is not everywhere, and its draws are exact only where the tangents bound
    the conditional. Returns an array (D, J)."""
    np.random.seed(seed)
    D = beta.shape[0]
    Q = start.shape[0] - 1
    J = group_pattern.shape[0]
    N, P = X.shape
    out = np.empty((D, J))
    base = np.empty(N)
    a = np.empty(N)
    B = np.empty(N)
    fast = np.empty(Q, dtype=np.bool_)
    env = np.empty((Q, 9))  # m, hm, x1, h1, g1, x3, h3, g3, z1, and z2 below
    z2s = np.empty(Q)
    mass = np.empty((Q, 3))
    for d in range(D):
        for i in range(N):
            v = offset[i]
            for c in range(P):
                v += X[i, c] * beta[d, c]
            base[i] = v
            a[i] = sd[d] * xr[i]
        for p in range(Q):
            lo, hi = start[p], start[p + 1]
            Bp = B[lo:hi]
            f = (kind == BINOMIAL_LOGIT or kind == POISSON_LOG) and intercept_exponentials(base, a, lo, hi, Bp)
            fast[p] = f
            m, h = group_mode(base, a, y, n, lo, hi, kind, Bp, f, phi[d])
            hm = group_logf(base, a, y, n, lo, hi, kind, Bp, f, m, phi[d])
            delta = 1.0 / np.sqrt(h)
            while True:  # tangents at m ± δ with slopes of the right signs (δ grows if too flat)
                x1, x3 = m - delta, m + delta
                h1, g1 = group_logf_grad(base, a, y, n, lo, hi, kind, Bp, f, x1, phi[d])
                h3, g3 = group_logf_grad(base, a, y, n, lo, hi, kind, Bp, f, x3, phi[d])
                if g1 > 1e-8 and g3 < -1e-8:
                    break
                delta *= 2.0
            z1 = x1 + (hm - h1) / g1  # where the tangent at x1 reaches the mode's level
            z2 = x3 + (hm - h3) / g3
            env[p, 0], env[p, 1], env[p, 2], env[p, 3], env[p, 4] = m, hm, x1, h1, g1
            env[p, 5], env[p, 6], env[p, 7], env[p, 8] = x3, h3, g3, z1
            z2s[p] = z2
            # masses relative to exp(hm): left tail 1/g1, middle z2 − z1, right tail 1/(−g3)
            mass[p, 0], mass[p, 1], mass[p, 2] = 1.0 / g1, z2 - z1, -1.0 / g3
        for j in range(J):
            p = group_pattern[j]
            lo, hi = start[p], start[p + 1]
            Bp = B[lo:hi]
            m, hm, x1, h1, g1 = env[p, 0], env[p, 1], env[p, 2], env[p, 3], env[p, 4]
            x3, h3, g3, z1, z2 = env[p, 5], env[p, 6], env[p, 7], env[p, 8], z2s[p]
            total = mass[p, 0] + mass[p, 1] + mass[p, 2]
            while True:
                r = np.random.random() * total
                if r < mass[p, 0]:  # density ∝ exp(g1 (u − z1)) on (−∞, z1]
                    u = z1 + np.log(1.0 - np.random.random()) / g1
                    top = hm + g1 * (u - z1)
                elif r < mass[p, 0] + mass[p, 1]:
                    u = z1 + np.random.random() * (z2 - z1)
                    top = hm
                else:  # ∝ exp(g3 (u − z2)) on [z2, ∞)
                    u = z2 + np.log(1.0 - np.random.random()) / g3
                    top = hm + g3 * (u - z2)
                if np.log(1.0 - np.random.random()) <= group_logf(base, a, y, n, lo, hi, kind, Bp, fast[p], u, phi[d]) - top:
                    break
            out[d, j] = u
    return out


@numba.njit(cache=True, error_model="numpy")
def _log_conditional(base, A, y, n, lo, hi, kind, u, k, phi):
    """log p(u | y) + const of one group: Σᵢ κ(ηᵢ) − ‖u‖²/2, ηᵢ = baseᵢ + Aᵢ·u. For the logit,
    κ = y η − n max(η, 0) − n log(1 + e^(−|η|)) with the logarithms of the Bernoulli rows taken of
    a running product (each factor in (1, 2]; one logarithm per 512 rows, not one per row)."""
    lf = 0.0
    for r in range(k):
        lf -= 0.5 * u[r] * u[r]
    if kind == BINOMIAL_LOGIT:
        prod = 1.0
        held = 0
        for i in range(lo, hi):
            eta = base[i]
            for r in range(k):
                eta += A[i, r] * u[r]
            t = np.exp(-abs(eta))
            lf += y[i] * eta - n[i] * max(eta, 0.0)
            if n[i] == 1.0:
                prod *= 1.0 + t
                held += 1
                if held == 512:
                    lf -= np.log(prod)
                    prod, held = 1.0, 0
            else:
                lf -= n[i] * np.log1p(t)
        return lf - np.log(prod)
    for i in range(lo, hi):
        eta = base[i]
        for r in range(k):
            eta += A[i, r] * u[r]
        kap, _, _ = row_kernel(eta, y[i], n[i], kind, phi)
        lf += kap
    return lf


@numba.njit(cache=True, error_model="numpy", nogil=True)
def conditional_draws_vector(X, offset, Xr, y, n, start, group_pattern, beta, Lam, seed, kind, steps, max_scale, phi):
    """Draws of each group's standardised k-vector u_j from p(u_j | y, β_d, Λ_d), Λ = diag(sd) L
    (ηᵢ = baseᵢ + xrᵢᵀ Λ u). The log conditional is strongly concave with −∇² ⪰ I (the prior's
    curvature; the canonical links' likelihoods are log-concave), so at its mode û (gradient g ≈ 0)
    log p(u) ≤ log p(û) + gᵀ(u − û) − ‖u − û‖²/2: rejection from N(û + g, I) draws it exactly,
    accepting with probability about |H|^(−1/2) (H the curvature at û). Where that is small —
    √|H| above ``max_scale`` — an independence Metropolis–Hastings chain of ``steps`` steps with a
    multivariate t(4) proposal at û with scale L_H⁻ᵀ (H = L_H L_Hᵀ) instead, started from a
    proposal draw; so is a draw whose rejection has not accepted within 50 · max_scale tries.
    The data are one group per pattern as in :func:`conditional_draws`; Numba's generator (the
    calling thread's) is seeded with ``seed``; ``phi`` (D,) a dispersion family's φ per draw (else
    unused). Returns an array (D, J, k)."""
    np.random.seed(seed)
    D = beta.shape[0]
    Q = start.shape[0] - 1
    J = group_pattern.shape[0]
    N, P = X.shape
    k = Xr.shape[1]
    out = np.empty((D, J, k))
    base = np.empty(N)
    A = np.empty((N, k))
    modes = np.empty((Q, k))
    grads = np.empty((Q, k))
    chols = np.empty((Q, k, k))
    top = np.empty(Q)
    scale = np.empty(Q)
    H = np.empty((k, k))
    Lh = np.empty((k, k))
    g = np.empty(k)
    step = np.empty(k)
    cand = np.empty(k)
    cur = np.empty(k)
    tries = int(50 * max_scale) + 1
    longest = 0
    for p in range(Q):
        longest = max(longest, start[p + 1] - start[p])
    Eta = np.empty(longest)
    Exp = np.empty(longest)
    Bits = np.empty(longest, dtype=np.int64)
    for d in range(D):
        for i in range(N):
            v = offset[i]
            for c in range(P):
                v += X[i, c] * beta[d, c]
            base[i] = v
            for r in range(k):
                acc = 0.0
                for c in range(k):
                    acc += Xr[i, c] * Lam[d, c, r]
                A[i, r] = acc
        for p in range(Q):
            u = vector_mode(base, A, y, n, start[p], start[p + 1], kind, k, H, Lh, g, step, Eta, Exp, Bits, phi[d])
            modes[p] = u
            grads[p] = g  # the gradient at the returned mode
            chols[p] = Lh
            top[p] = _log_conditional(base, A, y, n, start[p], start[p + 1], kind, u, k, phi[d])
            det = 1.0
            for r in range(k):
                det *= Lh[r, r]
            scale[p] = det  # √|H|: about the expected number of rejection proposals
        for j in range(J):
            p = group_pattern[j]
            lo, hi = start[p], start[p + 1]
            done = False
            if scale[p] <= max_scale:
                for _ in range(tries):
                    sq, lin = 0.0, 0.0
                    for r in range(k):
                        step[r] = grads[p, r] + np.random.standard_normal()
                        cand[r] = modes[p, r] + step[r]
                        sq += step[r] * step[r]
                        lin += grads[p, r] * step[r]
                    lf = _log_conditional(base, A, y, n, lo, hi, kind, cand, k, phi[d])
                    if -np.random.standard_exponential() < lf - (top[p] + lin - 0.5 * sq):
                        for r in range(k):
                            out[d, j, r] = cand[r]
                        done = True
                        break
            if done:
                continue
            cur_lf = 0.0
            cur_lq = 0.0
            for s_ in range(steps + 1):
                w = 0.5 * (np.random.standard_exponential() + np.random.standard_exponential())  # χ²₄ / 4
                tt = 0.0
                for r in range(k):
                    cand[r] = np.random.standard_normal() / np.sqrt(w)  # a t(4) variate
                    tt += cand[r] * cand[r]
                lq = -0.5 * (4 + k) * np.log1p(0.25 * tt)
                for r in range(k - 1, -1, -1):  # û + L_H⁻ᵀ t
                    v = cand[r]
                    for q in range(r + 1, k):
                        v -= chols[p, q, r] * step[q]
                    step[r] = v / chols[p, r, r]
                for r in range(k):
                    cand[r] = modes[p, r] + step[r]
                lf = _log_conditional(base, A, y, n, lo, hi, kind, cand, k, phi[d])
                if s_ == 0 or -np.random.standard_exponential() < (lf - cur_lf) - (lq - cur_lq):
                    for r in range(k):
                        cur[r] = cand[r]
                    cur_lf, cur_lq = lf, lq
            for r in range(k):
                out[d, j, r] = cur[r]
    return out
