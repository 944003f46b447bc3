"""The compiled kernels of the marginal likelihood NUTS samples with ``marginalize=True``: adaptive
Gauss–Hermite quadrature of each group's random effect, value and gradient in one loop nest.

:func:`agq_kernel` integrates a scalar random effect per group and :func:`agq_vector_kernel` a block
of k terms on the product rule; :class:`~bayesglmm.bayes.agq_op.AGQMarginal` and
:class:`~bayesglmm.bayes.agq_op.AGQVectorMarginal` wrap them as PyTensor Ops. Per group:

* the conditional mode û by safeguarded Newton steps (capped at 1, to 1e-12), and the curvature
  (R² = 1 + Σ aᵢ² wᵢ for a scalar effect, H = L Lᵀ for a block; w the Fisher weight);
* the nodes u = û + √2 R⁻¹ x (û + √2 L⁻ᵀ x), the node terms F = log w + ‖x‖² + Σᵢ κ(ηᵢ) − ‖u‖²/2 with
  κ the row's log-likelihood kernel, and the group's log-likelihood logsumexp(F) + ½k log 2 −
  ½k log 2π − log|R|, weighted by the number of groups sharing the pattern;
* its gradient in baseᵢ and aᵢ with û and R held fixed (softmax(F)-weighted κ′, and κ′·u).

For the canonical links the exponentials factorise: exp(baseᵢ + a u) = exp(baseᵢ)·exp(a u) for a
random intercept (one exponential per node), and on a product grid exp(ηᵢ) at all q^k nodes is an
outer product of k·q exponentials per row; the Bernoulli terms Σ log(1 + tᵢ) are the log of a
running product. Slopes of a scalar effect, |η| beyond 300, and the probit and cloglog links take
the direct path, each row by :func:`bayesglmm.kernels.row_kernel` (a probit or cloglog row as the
frequentist AGQ's, :func:`bayesglmm.kernels.row_terms`).

The kernels' ``kind`` argument is the family's :attr:`~bayesglmm.families.Family.kernel_code`
(:func:`agq_kind`: one of :data:`AGQ_CODES`), the numbering of :mod:`bayesglmm.kernels`.
"""

from __future__ import annotations

import numba
import numpy as np

from ..kernels import (BETABINOMIAL_CLOGLOG, BETABINOMIAL_LOGIT, BETABINOMIAL_PROBIT, BINOMIAL_CLOGLOG, BINOMIAL_LOGIT,
                       BINOMIAL_PROBIT, GAMMA_LOG, NEGBIN_LOG, POISSON_LOG, dispersion_constant, dispersion_terms,
                       row_kernel, score_weight)
from .vexp import exp_into

# the codes and row_kernel are bayesglmm.kernels', importable from here as before
__all__ = ["agq_kind", "agq_kernel", "agq_vector_kernel", "AGQ_CODES", "BINOMIAL_LOGIT", "POISSON_LOG",
           "BINOMIAL_PROBIT", "BINOMIAL_CLOGLOG", "HALF_LOG_2_OVER_2PI", "row_kernel", "group_mode",
           "intercept_exponentials", "intercept_rows", "group_logf", "group_logf_grad", "chol_lower", "vector_mode"]


#: the :attr:`~bayesglmm.families.Family.kernel_code` values the kernels integrate: logit and log
#: (canonical: the fast paths), probit and cloglog (the direct path, each row by
#: :func:`bayesglmm.kernels.row_kernel`), and the dispersion families' NB (log), beta-binomial
#: (logit, probit, cloglog) and Gamma (log) (the direct path, each row by
#: :func:`bayesglmm.kernels.dispersion_terms` with the φ input, the η-free terms once a row)
AGQ_CODES = (BINOMIAL_LOGIT, BINOMIAL_PROBIT, BINOMIAL_CLOGLOG, POISSON_LOG, NEGBIN_LOG, BETABINOMIAL_LOGIT,
             BETABINOMIAL_PROBIT, BETABINOMIAL_CLOGLOG, GAMMA_LOG)


def agq_kind(family) -> int:
    """The kernels' ``kind`` of a family: its :attr:`~bayesglmm.families.Family.kernel_code` when
    the kernels take it (:data:`AGQ_CODES`); ValueError for the others (a Gaussian integrates
    exactly, a Poisson identity link has no log-concave likelihood on all of η, nor a Gamma inverse
    link: its η ≤ 0 is outside the mean's range)."""
    if family.kernel_code not in AGQ_CODES:
        raise ValueError(f"no AGQ kernel for {family.name} with the {family.link.name} link")
    return family.kernel_code


HALF_LOG_2_OVER_2PI = 0.5 * np.log(2.0) - 0.5 * np.log(2.0 * np.pi)


@numba.njit(cache=True, error_model="numpy")
def group_mode(base, a, y, n, lo, hi, kind, B, fast, phi):
    """The conditional mode û and the curvature R² of one group (Newton steps capped at 1, to 1e-12).
    ``fast``: a is one value over the group and B = exp(base), so exp(base + a u) = B·exp(a u)."""
    u = 0.0
    h = 1.0
    for it in range(101):
        g = -u
        h = 1.0
        au = a[lo] * u
        if fast and abs(au) < 300.0:
            e = np.exp(au)
            if kind == BINOMIAL_LOGIT:
                for i in range(lo, hi):
                    t = B[i - lo] * e
                    p = t / (1.0 + t)
                    g += a[i] * (y[i] - n[i] * p)
                    h += a[i] * a[i] * n[i] * p * (1.0 - p)
            else:
                sb = 0.0
                for i in range(lo, hi):
                    sb += B[i - lo]
                    g += a[i] * y[i]
                g -= a[lo] * e * sb
                h += a[lo] * a[lo] * e * sb
        else:
            for i in range(lo, hi):
                d1, w = score_weight(base[i] + a[i] * u, y[i], n[i], kind, phi)
                g += a[i] * d1
                h += a[i] * a[i] * w
        if it == 100:
            break
        step = min(max(g / h, -1.0), 1.0)
        if abs(step) < 1e-12:
            break  # h is the curvature at this u (the step left is below 1e-12)
        u += step
    return u, h


@numba.njit(cache=True, error_model="numpy")
def intercept_rows(base, a, lo, hi):
    """Whether rows lo:hi have one a over the group (a random intercept) and |baseᵢ| < 300."""
    fast = True
    bmax = 0.0
    for i in range(lo, hi):
        fast = fast and a[i] == a[lo]
        bmax = max(bmax, abs(base[i]))
    return fast and bmax < 300.0


@numba.njit(cache=True, error_model="numpy")
def intercept_exponentials(base, a, lo, hi, B):
    """Whether rows lo:hi take the fast path — one a over the group (a random intercept) and
    |base| < 300, so that exp(baseᵢ + a u) = exp(baseᵢ)·exp(a u): one exponential per node, not per
    node and row — and then B[i - lo] = exp(baseᵢ)."""
    fast = intercept_rows(base, a, lo, hi)
    if fast:
        for i in range(lo, hi):
            B[i - lo] = np.exp(base[i])
    return fast


@numba.njit(cache=True, error_model="numpy")
def bmax_exp(B, lo, hi):
    """The largest exp(baseᵢ) of rows lo:hi (``B`` as :func:`intercept_exponentials` left it)."""
    m = 0.0
    for i in range(hi - lo):
        m = max(m, B[i])
    return m


@numba.njit(cache=True, error_model="numpy")
def node_products(B, E, P, lo, hi, K):
    """P[k] = Πᵢ (1 + B[i]·E[k]) over the group's rows, node by node side by side."""
    for k in range(K):
        P[k] = 1.0
    for i in range(hi - lo):
        b = B[i]
        for k in range(K):
            P[k] *= 1.0 + b * E[k]


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def logit_moments(b, E, P, U, K):
    """Σ_k P_k σ_k and Σ_k P_k σ_k U_k, σ_k = t/(1 + t) at t = b·E_k (t capped at 1e300: σ = 1 where
    b·E_k overflows); summed in any order, so that the loop vectorises."""
    s0 = 0.0
    s1 = 0.0
    for k in range(K):
        t = min(b * E[k], 1e300)
        q = P[k] * (t / (1.0 + t))
        s0 += q
        s1 += q * U[k]
    return s0, s1


@numba.njit(cache=True, error_model="numpy")
def agq_kernel(base, a, phi, start, y, n, counts, x, logw, kind):
    """The value and its gradient in ``base``, ``a`` and the dispersion ``phi`` (see the module
    docstring; ``phi`` is unused, its gradient 0, for a family without one); rows of group j are
    ``start[j]:start[j + 1]``. The φ-derivative, like the others, holds the modes and curvatures
    fixed: Σ_j counts_j Σ_k softmax(F_j)_k Σ_{i∈j} ∂κ/∂φ at the node."""
    K = x.shape[0]
    J = counts.shape[0]
    gbase = np.zeros_like(base)
    ga = np.zeros_like(a)
    F = np.empty(K)
    E = np.empty(K)
    longest = 0
    for j in range(J):
        longest = max(longest, start[j + 1] - start[j])
    dk = np.empty((K, longest))  # κ′ at each node and row of the group (slow path), for the gradient
    Eb = np.empty(base.shape[0])  # exp(baseᵢ) of every row, one SIMD pass (used where |baseᵢ| < 300)
    if kind == BINOMIAL_LOGIT or kind == POISSON_LOG:
        exp_into(base, Eb, np.empty(base.shape[0], np.int64), base.shape[0])
    Dp = np.zeros(K)  # Σᵢ ∂κ/∂φ at each node of the group (a dispersion family)
    An = np.empty(K)  # a·uₖ (the vectorised Bernoulli path), then F − max F (the softmax's arguments)
    P = np.empty(K)  # Πᵢ (1 + tᵢ) at each node (the vectorised Bernoulli path)
    bits = np.empty(K, np.int64)  # exp_into's scratch
    disp = kind >= NEGBIN_LOG
    gphi = 0.0
    xmax = 0.0
    for k in range(K):
        xmax = max(xmax, abs(x[k]))
    total = 0.0
    for j in range(J):
        lo, hi = start[j], start[j + 1]
        fast = (kind == BINOMIAL_LOGIT or kind == POISSON_LOG) and intercept_rows(base, a, lo, hi)
        B = Eb[lo:hi]  # exp(baseᵢ) on the fast path, as intercept_exponentials leaves it
        u, h = group_mode(base, a, y, n, lo, hi, kind, B, fast, phi)
        R = np.sqrt(h)
        scale = np.sqrt(2.0) / R
        fast = fast and abs(a[lo]) * (abs(u) + scale * xmax) < 300.0
        sy = 0.0
        syb = 0.0
        sb = 0.0
        ones = True
        for i in range(lo, hi):
            sy += y[i]
            syb += y[i] * base[i]
            ones = ones and n[i] == 1.0
            if fast:
                sb += B[i - lo]
        top = -np.inf
        if fast and kind == BINOMIAL_LOGIT and ones and hi - lo <= 18 and \
                bmax_exp(B, lo, hi) * np.exp(abs(a[lo]) * (abs(u) + scale * xmax)) <= 1e15:
            # every tᵢ ≤ 1e15 at every node and at most 18 rows: Πᵢ (1 + tᵢ) ≤ 1e271, no overflow; the
            # nodes' products side by side (a loop over k the compiler vectorises) and the
            # exponentials in SIMD passes. No logarithms: the softmax weights are
            # exp(Gₖ − max G) / Pₖ with Gₖ = log wₖ + Σᵢ yᵢηᵢ − uₖ²/2, each ≤ 1 and the largest G's
            # ≥ 1/Pₖ ≥ 1e-271, so the weights that matter are normal doubles
            for k in range(K):
                Dp[k] = u + scale * x[k]
                An[k] = a[lo] * Dp[k]
            exp_into(An, E, bits, K)
            node_products(B, E, P, lo, hi, K)
            for k in range(K):
                f = logw[k] + syb + An[k] * sy - 0.5 * Dp[k] * Dp[k]
                F[k] = f
                top = max(top, f)
            for k in range(K):
                An[k] = F[k] - top
            exp_into(An, F, bits, K)
            for k in range(K):
                F[k] /= P[k]  # F now holds the unnormalised softmax weights
            weighted = True
        else:
            weighted = False
        for k in range(0 if weighted else K):
            node = u + scale * x[k]
            if fast:
                an = a[lo] * node
                e = np.exp(an)
                E[k] = e
                s = syb + an * sy
                if kind == BINOMIAL_LOGIT:
                    # Σ n_i log(1 + t_i) as the log of a running product (t_i = B_i e ≥ 1e15: η itself)
                    prod = 1.0
                    logs = 0.0
                    for i in range(lo, hi):
                        t = B[i - lo] * e
                        if t > 1e15:
                            logs += n[i] * (base[i] + an)
                        elif ones:
                            prod *= 1.0 + t
                            if prod > 1e280:
                                logs += np.log(prod)
                                prod = 1.0
                        else:
                            logs += n[i] * np.log1p(t)
                    s -= logs + np.log(prod)
                else:
                    s -= e * sb
            else:
                s = 0.0
                if disp:
                    sp = 0.0
                    for i in range(lo, hi):
                        kap, d1, _, dp = dispersion_terms(base[i] + a[i] * node, y[i], n[i], kind, phi)
                        s += kap
                        sp += dp
                        dk[k, i - lo] = d1
                    Dp[k] = sp
                else:
                    for i in range(lo, hi):
                        kap, d1, _ = row_kernel(base[i] + a[i] * node, y[i], n[i], kind, phi)
                        s += kap
                        dk[k, i - lo] = d1
            f = logw[k] + s - 0.5 * node * node
            F[k] = f
            top = max(top, f)
        acc = 0.0
        if not weighted:
            for k in range(K):
                An[k] = F[k] - top
            exp_into(An, F, bits, K)  # F now holds the unnormalised softmax weights
        for k in range(K):
            acc += F[k]
        total += counts[j] * (top + np.log(acc) + HALF_LOG_2_OVER_2PI - np.log(R))
        if disp:  # the rows' η-free terms, once a row (the node weights sum to 1), then the nodes'
            sp = 0.0
            for i in range(lo, hi):
                c, dc = dispersion_constant(y[i], n[i], kind, phi)
                total += counts[j] * c
                sp += dc
            gphi += counts[j] * sp
            sp = 0.0
            for k in range(K):
                if F[k] > 0.0:
                    sp += F[k] * Dp[k]
            gphi += counts[j] * sp / acc
        # gradient: softmax(F)-weighted κ′ (and κ′·node), nodes and R held fixed
        if fast and kind == POISSON_LOG:
            pe = 0.0
            pn = 0.0
            pen = 0.0
            for k in range(K):
                pk = F[k] / acc
                node = u + scale * x[k]
                pe += pk * E[k]
                pn += pk * node
                pen += pk * E[k] * node
            for i in range(lo, hi):
                gbase[i] += counts[j] * (y[i] - B[i - lo] * pe)
                ga[i] += counts[j] * (y[i] * pn - B[i - lo] * pen)
            continue
        if fast:  # Σ_k p_k κ′ = y Σ_k p_k − n Σ_k p_k σ(η_k): one pass over the nodes a row
            pn = 0.0
            for k in range(K):
                F[k] = counts[j] * F[k] / acc  # the weights p_k, summing to counts[j]
                Dp[k] = u + scale * x[k]  # the nodes
                pn += F[k] * Dp[k]
            for i in range(lo, hi):
                s0, s1 = logit_moments(B[i - lo], E, F, Dp, K)
                gbase[i] += y[i] * counts[j] - n[i] * s0
                ga[i] += y[i] * pn - n[i] * s1
            continue
        for k in range(K):
            pk = counts[j] * F[k] / acc
            node = u + scale * x[k]
            if False:
                pass
            else:
                for i in range(lo, hi):
                    d1 = dk[k, i - lo]
                    gbase[i] += pk * d1
                    ga[i] += pk * d1 * node
    return total, gbase, ga, gphi


@numba.njit(cache=True, error_model="numpy")
def group_logf(base, a, y, n, lo, hi, kind, B, fast, u, phi):
    """log p(y_j | u) + log φ(u) up to a constant: Σ κ(baseᵢ + aᵢ u) − u²/2 (fast path as in
    :func:`agq_kernel`)."""
    au = a[lo] * u
    s = -0.5 * u * u
    if fast and abs(au) < 300.0:
        e = np.exp(au)
        prod = 1.0
        for i in range(lo, hi):
            s += y[i] * (base[i] + a[i] * u)
            if kind == BINOMIAL_LOGIT:
                t = B[i - lo] * e
                if t > 1e15:
                    s -= n[i] * (base[i] + au)
                elif n[i] == 1.0:
                    prod *= 1.0 + t
                    if prod > 1e280:
                        s -= np.log(prod)
                        prod = 1.0
                else:
                    s -= n[i] * np.log1p(t)
            else:
                s -= B[i - lo] * e
        return s - np.log(prod)
    for i in range(lo, hi):
        kap, _, _ = row_kernel(base[i] + a[i] * u, y[i], n[i], kind, phi)
        s += kap
    return s


@numba.njit(cache=True, error_model="numpy")
def group_logf_grad(base, a, y, n, lo, hi, kind, B, fast, u, phi):
    """:func:`group_logf` and its derivative in u: Σ aᵢ κ′(baseᵢ + aᵢ u) − u."""
    g = -u
    au = a[lo] * u
    if fast and abs(au) < 300.0:
        e = np.exp(au)
        for i in range(lo, hi):
            t = B[i - lo] * e
            d1 = y[i] - n[i] * (t / (1.0 + t)) if kind == BINOMIAL_LOGIT else y[i] - t
            g += a[i] * d1
    else:
        for i in range(lo, hi):
            _, d1, _ = row_kernel(base[i] + a[i] * u, y[i], n[i], kind, phi)
            g += a[i] * d1
    return group_logf(base, a, y, n, lo, hi, kind, B, fast, u, phi), g


@numba.njit(cache=True, error_model="numpy")
def chol_lower(H, k, L):
    """L with H = L Lᵀ for a small symmetric positive definite H (k ≤ 3), in place."""
    for r in range(k):
        for c in range(r + 1):
            v = H[r, c]
            for q in range(c):
                v -= L[r, q] * L[c, q]
            L[r, c] = np.sqrt(v) if r == c else v / L[c, c]
        for c in range(r + 1, k):
            L[r, c] = 0.0


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def vector_mode(base, A, y, n, lo, hi, kind, k, H, L, g, step, Eta, Exp, Bits, phi):
    """Conditional mode û (returned) of one group's k-vector u and the Cholesky factor L of the
    curvature H = I + Σ wᵢ Aᵢ Aᵢᵀ there: Newton steps, each shrunk so that no coordinate moves by
    more than 1, to 1e-12. The last pass (at û) leaves ηᵢ = baseᵢ + Aᵢ·û in ``Eta[i − lo]`` and, for
    the canonical links, exp(ηᵢ) in ``Exp[i − lo]`` (η clipped at 700 for the logit, 709 for two
    terms), for the nodes' pass to reuse. The logit's p = t/(1 + t), w = t/(1 + t)² from
    t = exp(min(η, 700)): one exponential a row, no branch; for two terms the rows' exponentials
    by :func:`~bayesglmm.bayes.vexp.exp_into` (SIMD, ``Bits`` its scratch: a pass over
    Contraception's 1,934 rows 12.7 → 5.7 µs)."""
    u = np.zeros(k)
    for it in range(201):
        for r in range(k):
            g[r] = -u[r]
            for c in range(r + 1):
                H[r, c] = 1.0 if r == c else 0.0
        if k == 2 and kind == BINOMIAL_LOGIT:  # the common case unrolled: about 2× the loop below
            u0, u1 = u[0], u[1]
            g0, g1, h00, h10, h11 = -u0, -u1, 1.0, 0.0, 1.0
            for i in range(lo, hi):  # three loops, the first and last SIMD
                Eta[i - lo] = base[i] + A[i, 0] * u0 + A[i, 1] * u1
            exp_into(Eta, Exp, Bits, hi - lo)
            for i in range(lo, hi):
                a0, a1 = A[i, 0], A[i, 1]
                t = Exp[i - lo]
                inv = 1.0 / (1.0 + t)
                p = t * inv
                d1, w = y[i] - n[i] * p, n[i] * p * inv
                g0 += a0 * d1
                g1 += a1 * d1
                h00 += w * a0 * a0
                h10 += w * a1 * a0
                h11 += w * a1 * a1
            g[0], g[1], H[0, 0], H[1, 0], H[1, 1] = g0, g1, h00, h10, h11
        else:
            for i in range(lo, hi):
                eta = base[i]
                for r in range(k):
                    eta += A[i, r] * u[r]
                if kind == BINOMIAL_LOGIT:
                    t = np.exp(min(eta, 700.0))
                    inv = 1.0 / (1.0 + t)
                    p = t * inv
                    d1, w = y[i] - n[i] * p, n[i] * p * inv
                elif kind == POISSON_LOG:
                    t = np.exp(eta)
                    d1, w = y[i] - t, t
                else:
                    t = 0.0
                    d1, w = score_weight(eta, y[i], n[i], kind, phi)
                Eta[i - lo] = eta
                Exp[i - lo] = t
                for r in range(k):
                    ar = A[i, r]
                    g[r] += ar * d1
                    wa = w * ar
                    for c in range(r + 1):
                        H[r, c] += wa * A[i, c]
        for r in range(k):
            for c in range(r + 1, k):
                H[r, c] = H[c, r]
        chol_lower(H, k, L)
        if it == 200:
            break
        for r in range(k):  # solve L Lᵀ step = g
            v = g[r]
            for q in range(r):
                v -= L[r, q] * step[q]
            step[r] = v / L[r, r]
        for r in range(k - 1, -1, -1):
            v = step[r]
            for q in range(r + 1, k):
                v -= L[q, r] * step[q]
            step[r] = v / L[r, r]
        big = 0.0
        for r in range(k):
            big = max(big, abs(step[r]))
        if big < 1e-12:
            break
        shrink = 1.0 / big if big > 1.0 else 1.0
        for r in range(k):
            u[r] += shrink * step[r]
    return u


@numba.njit(cache=True, error_model="numpy")
def _coordinate_exponentials(D, rows, x1, E, Arg, Bits):
    """E[r, i, j] = exp(D[i, r]·x1[j]) for the group's ``rows`` rows: one SIMD pass of
    :func:`~bayesglmm.bayes.vexp.exp_into` per coordinate r over all the rows' q nodes, written
    straight into E[r] (``Arg`` and ``Bits`` its scratch). Half the exponentials and 1/e^a for the
    other half of a symmetric rule took a scalar division each: 20 µs more a gradient on
    Contraception (7² nodes), measured side by side."""
    k = D.shape[1]
    q = x1.shape[0]
    for r in range(k):
        at = 0
        for i in range(rows):
            d = D[i, r]
            for jj in range(q):
                Arg[at + jj] = d * x1[jj]
            at += q
        exp_into(Arg, E[r].reshape(E.shape[1] * q), Bits, at)


@numba.njit(cache=True, error_model="numpy")
def _product_digits(X):
    """(q, digits, x1) when ``X`` (M, k) is the product grid of one rule x1 of q nodes, the last
    coordinate varying fastest (as :func:`bayesglmm.frequentist.agq.product_rule` builds it): node m
    is (x1[digits[m, 0]], …, x1[digits[m, k-1]]); q = 0 when it is not."""
    M, k = X.shape
    q = int(round(M ** (1.0 / k)))
    digits = np.zeros((M, k), dtype=np.int64)
    x1 = X[:q, k - 1].copy()
    if q ** k != M:
        return 0, digits, x1
    for m in range(M):
        rest = m
        for r in range(k - 1, -1, -1):
            digits[m, r] = rest % q
            rest //= q
            if X[m, r] != x1[digits[m, r]]:
                return 0, digits, x1
    return q, digits, x1


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _group_nodes(u, L, Q, Xt, logw, F, S, P, Ut, k, M):
    """A group's nodes û + Q x (Q = √2 L⁻ᵀ, upper triangular, built column by column) into ``Ut``
    (coordinate-major), F = log w + ‖x‖² − ‖u‖²/2 at each node, S = 0 and P = 1 (the running sums
    and products of the rows' terms); returns log|L|."""
    logdet = 0.0
    for r in range(k):
        logdet += np.log(L[r, r])
    for c in range(k):
        for r in range(k - 1, -1, -1):
            v = np.sqrt(2.0) if r == c else 0.0
            for t in range(r + 1, k):
                v -= L[t, r] * Q[t, c]
            Q[r, c] = v / L[r, r]
    for m in range(M):
        F[m] = logw[m]
        S[m] = 0.0
        P[m] = 1.0
    for r in range(k):
        for m in range(M):
            v = u[r]
            for c in range(r, k):
                v += Q[r, c] * Xt[c, m]
            Ut[r, m] = v
            F[m] -= 0.5 * v * v
    return logdet


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _row_coefficients(A, L, n, lo, hi, k, Eta, C, Span, D, xmax, q):
    """ηᵢ = cᵢ + Dᵢ·x on the group's rows: cᵢ = baseᵢ + Aᵢ·û (the modes' last pass, in ``Eta``), Dᵢ =
    √2 L⁻¹Aᵢ, and |cᵢ| + Σ|Dᵢᵣ| max|x| the span of ηᵢ. Returns (fast: a product grid and every span
    under 300, ones: every row a single trial)."""
    fast = q > 0
    ones = True
    for i in range(lo, hi):
        c = Eta[i - lo]
        span = abs(c)
        for r in range(k):
            v = np.sqrt(2.0) * A[i, r]
            for t in range(r):
                v -= L[r, t] * D[i - lo, t]
            D[i - lo, r] = v / L[r, r]
            span += abs(D[i - lo, r]) * xmax
        C[i - lo] = c
        Span[i - lo] = span
        fast = fast and span < 300.0
        ones = ones and n[i] == 1.0
    return fast, ones


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _flush(S, P, M):
    """Move the running products' logs into the sums before they overflow."""
    for m in range(M):
        S[m] += np.log(P[m])
        P[m] = 1.0


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _fast_rows(y, n, lo, hi, k, kind, ones, C, Span, D, Exp, E, q, T, S, P, F, Xt, dk, lin_d, M):
    """The rows' terms at every node on the product grid, exp(ηᵢ) as the outer product exp(cᵢ) ⊗_r
    exp(Dᵢᵣ x1) (k·q exponentials a row): Bernoulli terms as running products P, binomial and Poisson
    ones as sums S, κ′ into ``dk``; leaves S = F + Σ yᵢηᵢ − Σ(the terms) but for the log of P."""
    bound = 0.0  # a bound on the log of the running products so far
    lin = 0.0  # Σ yᵢ ηᵢ at every node: Σ yᵢ cᵢ + Σ_r (Σ yᵢ Dᵢᵣ) x_r, once a group
    for r in range(k):
        lin_d[r] = 0.0
    for i in range(lo, hi):
        c, span = C[i - lo], Span[i - lo]
        yi, ni = y[i], n[i]
        lin += yi * c
        for r in range(k):
            lin_d[r] += yi * D[i - lo, r]
        row = dk[i - lo]
        if k == 2 and kind == BINOMIAL_LOGIT and ones:  # unrolled: one loop over the nodes
            if bound + span > 600.0:
                _flush(S, P, M)
                bound = 0.0
            bound += span + 1.0
            Er, Er2 = E[0, i - lo], E[1, i - lo]
            t0 = Exp[i - lo]
            for j0 in range(q):
                v = t0 * Er[j0]
                at = j0 * q
                for j1 in range(q):
                    T[at + j1] = v * Er2[j1]
            for m in range(M):  # one SIMD loop (numpy's error model: no branch per division)
                t = T[m]
                one = 1.0 + t
                P[m] *= one
                row[m] = yi - t / one
            continue
        T[0] = Exp[i - lo]  # exp(η) at every node: the outer product, last coordinate fastest
        size = 1
        for r in range(k):
            Er = E[r, i - lo]
            for a in range(size - 1, -1, -1):  # in place, backwards: T[a] read before overwritten
                v = T[a]
                for jj in range(q):
                    T[a * q + jj] = v * Er[jj]
            size *= q
        if kind == BINOMIAL_LOGIT and ones:
            if bound + span > 600.0:  # flush the running products before they overflow
                _flush(S, P, M)
                bound = 0.0
            bound += span + 1.0
            for m in range(M):
                t = T[m]
                P[m] *= 1.0 + t
                row[m] = yi - t / (1.0 + t)
        elif kind == BINOMIAL_LOGIT:
            for m in range(M):
                t = T[m]
                S[m] += ni * np.log1p(t)
                row[m] = yi - ni * (t / (1.0 + t))
        else:
            for m in range(M):
                t = T[m]
                S[m] += t
                row[m] = yi - t
    for m in range(M):
        v = F[m] + lin
        for r in range(k):
            v += lin_d[r] * Xt[r, m]
        S[m] = v - S[m]  # F without the log of the running products


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _direct_rows(base, A, y, n, lo, hi, k, kind, Ut, F, dk, M, phi, Dp):
    """The rows' terms at every node by the kernel itself (off a product grid, |η| ≥ 300, or the
    probit and cloglog links, or a dispersion family): κ into F, κ′ into ``dk``, and for a
    dispersion family Σᵢ ∂κ/∂φ into ``Dp``."""
    for m in range(M):
        Dp[m] = 0.0
    for i in range(lo, hi):
        row = dk[i - lo]
        for m in range(M):
            eta = base[i]
            for r in range(k):
                eta += A[i, r] * Ut[r, m]
            if kind >= NEGBIN_LOG:
                kap, d1, _, dp = dispersion_terms(eta, y[i], n[i], kind, phi)
                Dp[m] += dp
            else:
                kap, d1, _ = row_kernel(eta, y[i], n[i], kind, phi)
            F[m] += kap
            row[m] = d1


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _softmax(F, S, P, T, Bits, M, fast_logit):
    """The group's node weights exp(F − top) into F and their sum: (top, acc). With ``fast_logit``
    (the Bernoulli running products) exp(S − top)/P, top = max S ≥ max(S − log P), no logarithm per
    node (P ≤ e^600, so the sum stays above 1e-280 unless the mass is elsewhere; else the logs)."""
    if fast_logit:
        top = -np.inf
        for m in range(M):
            top = max(top, S[m])
        acc = 0.0
        for m in range(M):
            T[m] = S[m] - top
        exp_into(T, F, Bits, M)
        for m in range(M):
            F[m] /= P[m]
            acc += F[m]
        if acc > 1e-280:
            return top, acc
        for m in range(M):
            F[m] = S[m] - np.log(P[m])
    top = -np.inf
    for m in range(M):
        top = max(top, F[m])
    acc = 0.0
    for m in range(M):
        T[m] = F[m] - top
    exp_into(T, F, Bits, M)
    for m in range(M):
        acc += F[m]
    return top, acc


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _accumulate_gradient(F, dk, Ut, lo, hi, k, M, gbase, gA):
    """gbaseᵢ += Σ_m Fₘ κ′ᵢₘ and gAᵢᵣ += Σ_m Fₘ κ′ᵢₘ uᵣₘ (F the weights: counts · softmax)."""
    if k == 2:  # unrolled: one loop over the nodes
        for i in range(lo, hi):
            row = dk[i - lo]
            s0 = s1 = s2 = 0.0
            for m in range(M):
                fr = F[m] * row[m]
                s0 += fr
                s1 += fr * Ut[0, m]
                s2 += fr * Ut[1, m]
            gbase[i] += s0
            gA[i, 0] += s1
            gA[i, 1] += s2
        return
    for i in range(lo, hi):
        row = dk[i - lo]
        s0 = 0.0
        for m in range(M):
            s0 += F[m] * row[m]
        gbase[i] += s0
        for r in range(k):
            sr = 0.0
            for m in range(M):
                sr += F[m] * row[m] * Ut[r, m]
            gA[i, r] += sr


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def agq_vector_kernel(base, A, phi, start, y, n, counts, X, logw, kind):
    """The product-rule AGQ of a k-vector random effect per group (k = A.shape[1]): the value and
    its gradient in ``base`` (n,) and ``A`` (n, k), ηᵢ = baseᵢ + Aᵢ·u, nodes u = û + √2 L⁻ᵀ x for
    H = L Lᵀ, the modes and L held fixed in the gradient; ``X`` (M, k) the product nodes, ``logw``
    their log weights + ‖x‖²; ``phi`` a dispersion family's φ (else unused), with its gradient.

    On a product grid ηᵢ at node x is cᵢ + Σ_r Dᵢᵣ x_r with cᵢ = baseᵢ + Aᵢ·û and Dᵢ = √2 L⁻¹Aᵢ, so
    exp(ηᵢ) at all M nodes is the outer product exp(cᵢ) ⊗_r exp(Dᵢᵣ x1): k·q exponentials per row
    instead of q^k, built row by row into contiguous node vectors (SIMD loops); the Bernoulli terms
    Σ log(1 + tᵢ) are the log of a running product per node, the Poisson ones sums (|η| < 300;
    else, or off a product grid, the direct path: two transcendental calls per node and row)."""
    M, k = X.shape
    J = counts.shape[0]
    gbase = np.zeros_like(base)
    gA = np.zeros_like(A)
    longest = 0
    for j in range(J):
        longest = max(longest, start[j + 1] - start[j])
    dk = np.empty((longest, M))  # κ′ at each row and node of the group, for the gradient
    F, S, P, T, Dp = np.empty(M), np.empty(M), np.empty(M), np.empty(M), np.zeros(M)
    gphi = 0.0
    Ut = np.empty((k, M))  # the nodes, coordinate-major
    H, L, Q = np.empty((k, k)), np.empty((k, k)), np.empty((k, k))
    g, step, lin_d = np.empty(k), np.empty(k), np.empty(k)
    q, digits, x1 = _product_digits(X)
    if kind != BINOMIAL_LOGIT and kind != POISSON_LOG:  # the factorised exponentials are the canonical links'
        q = 0
    xmax = 0.0
    for j in range(x1.shape[0]):
        xmax = max(xmax, abs(x1[j]))
    C, Span, D = np.empty(longest), np.empty(longest), np.empty((longest, k))
    E = np.empty((k, longest, x1.shape[0]))  # exp(Dᵢᵣ x1) of a group's rows
    Arg = np.empty(longest * x1.shape[0])
    Eta, Exp = np.empty(longest), np.empty(longest)
    Bits = np.empty(max(M, longest * x1.shape[0]), dtype=np.int64)
    Xt = np.ascontiguousarray(X.T)
    total = 0.0
    half_k = 0.5 * k * (np.log(2.0) - np.log(2.0 * np.pi))
    for j in range(J):
        lo, hi = start[j], start[j + 1]
        u = vector_mode(base, A, y, n, lo, hi, kind, k, H, L, g, step, Eta, Exp, Bits, phi)
        logdet = _group_nodes(u, L, Q, Xt, logw, F, S, P, Ut, k, M)
        fast, ones = _row_coefficients(A, L, n, lo, hi, k, Eta, C, Span, D, xmax, q)
        if fast:
            _coordinate_exponentials(D, hi - lo, x1, E, Arg, Bits)
            _fast_rows(y, n, lo, hi, k, kind, ones, C, Span, D, Exp, E, q, T, S, P, F, Xt, dk, lin_d, M)
            if not (kind == BINOMIAL_LOGIT and ones):
                for m in range(M):
                    F[m] = S[m]
        else:
            _direct_rows(base, A, y, n, lo, hi, k, kind, Ut, F, dk, M, phi, Dp)
        fast_logit = fast and kind == BINOMIAL_LOGIT and ones
        if fast_logit:
            top, acc = _softmax(F, S, P, T, Bits, M, True)
        else:
            top, acc = _softmax(F, S, P, T, Bits, M, False)
        total += counts[j] * (top + np.log(acc) + half_k - logdet)
        for m in range(M):  # the weights of the gradient: counts · softmax(F)
            F[m] *= counts[j] / acc
        if kind >= NEGBIN_LOG:  # the rows' η-free terms once a row, then the nodes'
            for i in range(lo, hi):
                c, dc = dispersion_constant(y[i], n[i], kind, phi)
                total += counts[j] * c
                gphi += counts[j] * dc
            for m in range(M):
                if F[m] > 0.0:
                    gphi += F[m] * Dp[m]
        _accumulate_gradient(F, dk, Ut, lo, hi, k, M, gbase, gA)
    return total, gbase, gA, gphi
