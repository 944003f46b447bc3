"""Compiled (Numba) node loops of adaptive Gauss–Hermite quadrature with a vector random effect.

:func:`bayesglmm.frequentist.agq.agq_value_and_grad` spends its time at the nodes: for every
pattern j, node x and row i of j, η = η̂ᵢ + Bᵢ·x, the row's log-likelihood and score at η, the
node term F_jx, its softmax weight P_jx, and the sums the gradient needs. In NumPy that is some
twenty passes over (nodes × rows) arrays and sparse products per call; here it is one loop that
keeps a pattern's node terms in a small scratch array (its scores at the nodes too, up to
``max_stored`` of them; beyond, they are computed again in the gradient's pass). A row's
log-likelihood and score are :func:`bayesglmm.kernels.row_terms`, which follows
:meth:`bayesglmm.families.Family.loglik_kernel` and :meth:`~bayesglmm.families.Family.score`
formula for formula (μ clipped to [ε, 1 − ε] for a probability, ``xlogy`` at y = 0), for every
(family, link) pair with a :attr:`~bayesglmm.families.Family.kernel_code`; the NumPy path stays the
reference they are tested against.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..kernels import EPS, row_terms

# row_terms and EPS are bayesglmm.kernels', importable from here as before
__all__ = ["agq_nodes", "row_terms", "EPS"]

_SQRT2 = math.sqrt(2.0)


@njit(cache=True)
def agq_nodes(code, eta, B, A, y, n, start, const, U, Rinv_T, X, logw, with_grad, max_stored):
    """The product rule's node terms for every pattern, and the sums of its gradient.

    Parameters
    ----------
    code : int
        :attr:`~bayesglmm.families.Family.kernel_code`.
    eta : (n,)
        η at the modes.
    B : (n, k)
        √2 R_j⁻¹aᵢ: η at node x is ηᵢ + Bᵢ·x.
    A : (n, k)
        aᵢ = Lᵀxrᵢ.
    y, n : (n,)
        Response and trials (ones when there are none).
    start : (J + 1,)
        Rows start[j]:start[j+1] are pattern j's (rows sorted by pattern).
    const : (J,)
        Each pattern's log-likelihood constant.
    U : (J, k)
        Modes.
    Rinv_T : (J, k, k)
        R_j⁻ᵀ.
    X : (K, k)
        Nodes; ``logw`` (K,) log ω + ‖x‖².
    with_grad : bool
    max_stored : int
        The most scores at a pattern's nodes kept for the gradient's pass (nodes × the pattern's
        rows); beyond, they are computed again there.

    Returns
    -------
    lse : (J,)
        logsumexp over nodes of F_jx = log ω_x + ‖x‖² + ℓ_j(u_x) − ‖u_x‖²/2.
    s1 : (n,), Vx : (n, k)
        Σ_x P g and Σ_x P g x per row (P_jx = exp(F_jx − lse_j), g the score at the node).
    pc : (J, k), Cx : (J, k, k)
        Σ_x P c_x and Σ_x P c_x xᵀ per pattern, c_x = Σᵢ g_ix aᵢ − u_x.
    """
    nrow, k = B.shape
    J, K = len(const), X.shape[0]
    lse = np.empty(J)
    s1 = np.zeros(nrow)
    Vx = np.zeros((nrow, k))
    pc = np.zeros((J, k))
    Cx = np.zeros((J, k, k))
    F = np.empty(K)
    ux = np.empty((K, k))
    width = 0
    for j in range(J):
        width = max(width, start[j + 1] - start[j])
    store = K * width <= max_stored  # keep a pattern's scores at its nodes (else compute them again)
    G = np.empty((K, width) if store else (1, width))
    for j in range(J):
        r0, r1 = start[j], start[j + 1]
        for x in range(K):
            sq = 0.0
            for a in range(k):
                v = U[j, a]
                for b in range(k):
                    v += _SQRT2 * Rinv_T[j, a, b] * X[x, b]
                ux[x, a] = v
                sq += v * v
            total = const[j]
            for i in range(r0, r1):
                e = eta[i]
                for b in range(k):
                    e += B[i, b] * X[x, b]
                ll, g = row_terms(code, y[i], n[i], e)
                total += ll
                if store:
                    G[x, i - r0] = g
            F[x] = logw[x] + total - 0.5 * sq
        top = F.max()
        acc = 0.0
        for x in range(K):
            acc += math.exp(F[x] - top)
        lse[j] = top + math.log(acc)
        if not with_grad:
            continue
        for x in range(K):
            P = math.exp(F[x] - lse[j])
            if P == 0.0:
                continue
            row = x if store else 0
            if not store:
                for i in range(r0, r1):
                    e = eta[i]
                    for b in range(k):
                        e += B[i, b] * X[x, b]
                    G[0, i - r0] = row_terms(code, y[i], n[i], e)[1]
            for a in range(k):
                c = -ux[x, a]
                for i in range(r0, r1):
                    c += G[row, i - r0] * A[i, a]
                pc[j, a] += P * c
                for b in range(k):
                    Cx[j, a, b] += P * c * X[x, b]
            for i in range(r0, r1):
                pg = P * G[row, i - r0]
                s1[i] += pg
                for b in range(k):
                    Vx[i, b] += pg * X[x, b]
    return lse, s1, Vx, pc, Cx
