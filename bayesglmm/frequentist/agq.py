"""Adaptive Gauss–Hermite quadrature (AGQ) for one grouping factor with one or more terms.

For level j, with conditional mode û_j and the PIRLS curvature H_j = R_j R_jᵀ (a k×k
block of ΛᵀZᵀWZΛ + I), the integral over the spherical effects u_j is taken on a
product Gauss–Hermite grid centred at û_j and scaled by R_j⁻ᵀ:

    ∫ exp(ℓ_j(u)) φ_k(u) du ≈ 2^{k/2} |R_j|⁻¹ Σ_x w_x e^{‖x‖²} exp(ℓ_j(u_x)) φ_k(u_x),
    u_x = û_j + √2 R_j⁻ᵀ x,

with numpy's physicists' rule (``numpy.polynomial.hermite.hermgauss``). With one node
this is exactly the Laplace approximation. lme4's ``glmer`` allows only a scalar random
effect for nAGQ > 1; here a block of k terms uses the nagqᵏ-point product rule.

References
----------
Pinheiro, J. C. and Bates, D. M. (1995). Approximations to the log-likelihood function in
the nonlinear mixed-effects model. JCGS 4, 12–35.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from ..design import distinct_groups
from ..results import NotApplicableError

__all__ = ["GroupData", "group_data", "agq_loglik", "agq_value_and_grad", "check_agq", "NAGQ_LADDER", "settle_nagq"]

#: the rules an automatic choice of nodes tries, in turn, per dimension, for a block of k terms (the
#: key): the product rule costs nagq^k conditional log-likelihoods per group, so the larger blocks
#: stop earlier (21² = 441, 11³ = 1,331, 7⁴ = 2,401 nodes a group; a block of 5 or more terms has no
#: ladder). A scalar random effect goes on to 201 nodes (``fit.MAX_NAGQ``), a few milliseconds an
#: evaluation: on simulated binary data with an SD of 4–5.7 and 2–5 records a group, 100 nodes were
#: within 2.4e-7 of the 300-node likelihood while 71 were up to 3.3e-5 off, so a ladder ending at
#: 100 flagged 5 of 18 such data sets as unsettled that 151 nodes confirm (docs/frequentist.md).
#: ``fit("agq")`` climbs it from :func:`~bayesglmm.frequentist.fit.default_nagq`'s rule
#: (:func:`~bayesglmm.frequentist.fit.fit_agq_settled`), ``sample(marginalize=True)`` from its first
#: (:func:`bayesglmm.bayes.marginalized.nagq_settling`); both by :func:`settle_nagq`.
NAGQ_LADDER = {1: (7, 11, 15, 21, 25, 31, 41, 51, 71, 100, 151, 201), 2: (5, 7, 9, 11, 15, 21), 3: (3, 5, 7, 9, 11),
               4: (5, 7)}


def check_agq(design, nagq) -> None:
    """Raise ValueError unless AGQ applies: one random block, ``nagq`` a positive integer."""
    if not isinstance(nagq, (int, np.integer)) or nagq < 1:
        raise ValueError(f"nagq must be a positive integer, got {nagq!r}")
    if len(design.random) != 1:
        raise NotApplicableError(
            f"method 'agq' needs a single grouping factor with one random-effect block; this model has "
            f"{len(design.random)} blocks ({', '.join(b.label for b in design.random)}): use method='laplace'"
        )
    if nagq ** design.random[0].n_terms > 100_000:
        raise NotApplicableError(f"nagq={nagq} with {design.random[0].n_terms} terms needs "
                         f"{nagq ** design.random[0].n_terms} nodes per group; use a smaller nagq")


def settle_nagq(loglik, candidates, tol: float, known: dict | None = None) -> tuple[int, float]:
    """Walk the rules ``candidates`` (increasing) until the log-likelihood settles.

    Parameters
    ----------
    loglik : callable
        ``loglik(nagq)``: the log-likelihood with ``nagq`` nodes per dimension at a fixed point
        (a float, or an array of floats at several points: the change is their largest).
    candidates : sequence of int
        The rules to try, fewest nodes first (from :data:`NAGQ_LADDER`).
    tol : float
        The change between successive rules below which the smaller one is taken.
    known : dict, optional
        Values of ``loglik`` already at hand, by rule (e.g. the fit's own): not recomputed.

    Returns
    -------
    nagq : int
        The first rule whose log-likelihood is within ``tol`` of the next rule's; when none is,
        the last one.
    change : float
        Its change to the next rule (for the last rule: from the one before it; ``inf`` for a
        single candidate). The rule settled when ``change < tol``.

    Notes
    -----
    The larger rules are evaluated only as far as needed. The successive change of a
    Gauss–Hermite rule that has started to converge overstates the error of the smaller rule
    little (hard binary data, SD 5: 71 nodes' error 6.2e-7 against the 300-node value, their
    change to 100 nodes 5.8e-7): the chosen rule is accurate to about ``tol``, and the next one
    much better (100 nodes: 4.4e-8). Before it
    converges the error oscillates in sign (15 → 21 → 25 nodes: +0.08, −0.12, −0.008), so a
    change can be small by chance: the ladder's steps are small enough that none was on the
    data sets measured.
    """
    candidates = tuple(candidates)
    values = dict(known or {})

    def at(q):
        if q not in values:
            values[q] = loglik(q)
        return np.atleast_1d(np.asarray(values[q], dtype=float))

    if len(candidates) < 2:
        return int(candidates[0]), float("inf")
    change = float("inf")
    for q, nxt in zip(candidates, candidates[1:]):
        change = float(np.max(np.abs(at(nxt) - at(q))))
        if change < tol:
            return int(q), change
    return int(candidates[-1]), change


@functools.lru_cache(maxsize=32)
def product_rule(nagq: int, k: int):
    """Nodes (K, k) of the k-dimensional product Gauss–Hermite rule and log(weight) + ‖x‖²."""
    x1, w1 = np.polynomial.hermite.hermgauss(nagq)
    grid = np.array(list(itertools.product(range(nagq), repeat=k)))
    X = x1[grid]
    return X, np.sum(np.log(w1[grid]), axis=1) + np.sum(X**2, axis=1)


class GroupData(NamedTuple):
    """The rows AGQ integrates over, each distinct group pattern once.

    Groups with identical data (:func:`bayesglmm.design.distinct_groups`) have identical modes,
    curvatures and node terms, so one representative group per pattern is integrated and its
    log-likelihood and gradient counted ``counts`` times (ohio: 537 children, 32 patterns). The
    fields a :class:`~bayesglmm.design.RandomBlock` has (``index``, ``n_levels``, ``n_terms``)
    mean the same here, over the patterns.
    """

    y: np.ndarray             #: the representative rows' response, (n_r,)
    trials: np.ndarray | None
    offset: np.ndarray
    X: np.ndarray             #: fixed-effects columns, (n_r, p)
    Xr: np.ndarray            #: the block's columns, (n_r, k)
    index: np.ndarray         #: each row's pattern, (n_r,), sorted
    n_levels: int             #: the number of patterns P
    n_terms: int
    counts: np.ndarray        #: groups sharing each pattern, (P,)
    group: np.ndarray         #: the design's level each pattern takes its mode from, (P,)
    start: np.ndarray         #: rows start[j]:start[j + 1] are pattern j's, (P + 1,)
    per_group: sp.csr_matrix  #: (P, n_r) 0/1: sums over each pattern's rows as one sparse product


def group_data(design, distinct: bool = True) -> GroupData:
    """The :class:`GroupData` of ``design``'s one random block (computed once per deviance);
    ``distinct=False`` keeps every group as its own pattern (the reference the compressed rule
    is tested against)."""
    block = design.random[0]
    if distinct:
        rows, index, counts, group_pattern = distinct_groups(design, with_groups=True)
    else:
        rows, index = np.arange(design.nobs), block.index
        counts, group_pattern = np.ones(block.n_levels), np.arange(block.n_levels)
    order = np.argsort(index, kind="stable")
    rows, index = rows[order], index[order]
    n, P = len(rows), len(counts)
    return GroupData(
        y=design.y[rows], trials=None if design.trials is None else design.trials[rows], offset=design.offset[rows],
        X=design.X[rows], Xr=block.Xr[rows], index=index, n_levels=P, n_terms=block.n_terms, counts=counts,
        group=np.unique(group_pattern, return_index=True)[1], start=np.searchsorted(index, np.arange(P + 1)),
        per_group=sp.csr_matrix((np.ones(n), (index, np.arange(n))), shape=(P, n)))


def _modes(data: GroupData, u_hat) -> np.ndarray:
    """The conditional modes of the patterns' representative groups, (P, k)."""
    return np.asarray(u_hat, dtype=float).reshape(-1, data.n_terms)[data.group]


def agq_loglik(design, family, L, beta, u_hat, nagq, data: GroupData | None = None, compiled: bool = True) -> float:
    """Marginal log-likelihood by AGQ at (L, β), given the conditional modes ``u_hat``.

    Parameters
    ----------
    design : Design
        With exactly one random block (see :func:`check_agq`).
    family : Family
    L : ndarray, shape (k, k)
        The block's relative covariance factor.
    beta : ndarray, shape (p,)
    u_hat : ndarray, shape (J * k,)
        Conditional modes (level-major), from PIRLS.
    nagq : int
        Nodes per dimension.
    data : GroupData, optional
        :func:`group_data` of ``design``, when the caller keeps it.
    compiled : bool
        The nodes by the compiled loop (:mod:`~bayesglmm.frequentist.agq_kernels`) where the
        family has one; False: by NumPy (the reference it is tested against).
    """
    data = group_data(design) if data is None else data
    base = data.offset + data.X @ beta
    a = data.Xr @ L  # row i: (Lᵀ xr_i)ᵀ, so that xr_i · (L u) = a_i · u
    U = _modes(data, u_hat)
    eta = base + np.einsum("ik,ik->i", a, U[data.index])
    wk = family.working(eta, data.y, data.trials)
    R = np.linalg.cholesky(_level_outer(data, wk.weight, a))  # H_j = R_j R_jᵀ
    if compiled and family.kernel_code >= 0 and not family.has_dispersion:  # agq_nodes has no φ
        lse = _compiled_nodes(data, family, a, eta, U, R, nagq, with_grad=False)[0]
    else:
        lse = logsumexp(np.vstack([chunk[-1] for chunk in _node_batches(data, family, a, eta, U, R, nagq)]), axis=0)
    return float(data.counts @ _per_level(lse, R))


def _level_outer(block, weight, a) -> np.ndarray:
    """I + Σ_{i∈j} wᵢ aᵢaᵢᵀ for every level j, shape (J, k, k): the block of the PIRLS curvature
    (``block``: a :class:`GroupData` or a RandomBlock)."""
    J, k = block.n_levels, block.n_terms
    H = np.empty((J, k, k))
    for r in range(k):
        for c in range(r, k):
            H[:, r, c] = H[:, c, r] = np.bincount(block.index, weights=weight * a[:, r] * a[:, c], minlength=J)
    return H + np.eye(k)


def _node_batches(data: GroupData, family, a, eta, U, R, nagq, with_terms=True):
    """The product rule's nodes in batches of bounded memory: for each batch, (nodes x (K_b, k),
    u_x = û_j + √2 R_j⁻ᵀ x (K_b, J, k), η at them (K_b, n), and F_jx = log ω_x + ‖x‖² + ℓ_j(u_x)
    − ‖u_x‖²/2 (K_b, J), ℓ_j with its constants). ``eta`` is η at the modes: ηᵢ(u_x) = η̂ᵢ + Bᵢ·x
    with Bᵢ = √2 R_j⁻¹aᵢ, one matrix product a batch. ``with_terms=False`` yields None for F."""
    y, trials, idx = data.y, data.trials, data.index
    Rinv_T = np.transpose(np.linalg.inv(R), (0, 2, 1))  # R_j⁻ᵀ
    X, logw = product_rule(nagq, data.n_terms)
    tb = None if trials is None else trials[None, :]
    per_group = data.per_group
    const = per_group @ family.loglik_constant(y, trials)  # per level; the same at every node
    B = np.sqrt(2.0) * np.einsum("iba,ib->ia", Rinv_T[idx], a)  # √2 R_j⁻¹aᵢ, (n, k)
    chunk = max(1, 2_000_000 // max(len(y), 1))  # nodes per batch
    for start in range(0, len(X), chunk):
        Xc = X[start:start + chunk]
        Ux = U[None, :, :] + np.sqrt(2.0) * np.tensordot(Xc, Rinv_T, axes=(1, 2))  # (K, J, k)
        eta_x = eta[None, :] + Xc @ B.T
        if not with_terms:
            yield Xc, Ux, eta_x, None
            continue
        ll = family.loglik_kernel(y[None, :], family.link.inverse(eta_x), tb)  # (K, n)
        per = (per_group @ ll.T).T + const  # per-level sums, (K, J)
        yield Xc, Ux, eta_x, logw[start:start + chunk, None] + per - 0.5 * np.sum(Ux**2, axis=2)


def _per_level(lse, R) -> np.ndarray:
    """Each level's log-likelihood from logsumexp over nodes of its node terms (J,) and its
    curvature factor R (J, k, k)."""
    k = R.shape[1]
    logdetR = np.sum(np.log(np.diagonal(R, axis1=1, axis2=2)), axis=1)
    return lse + 0.5 * k * np.log(2.0) - 0.5 * k * np.log(2 * np.pi) - logdetR


def _compiled_nodes(data: GroupData, family, a, eta, U, R, nagq, with_grad, max_stored: int = 4_000_000):
    """:func:`~bayesglmm.frequentist.agq_kernels.agq_nodes` on ``data``: (lse, s1, Vx, pc, Cx); at
    most ``max_stored`` scores (32 MB) kept between its two passes over a pattern's nodes."""
    from .agq_kernels import agq_nodes

    Rinv_T = np.ascontiguousarray(np.transpose(np.linalg.inv(R), (0, 2, 1)))
    B = np.sqrt(2.0) * np.einsum("iba,ib->ia", Rinv_T[data.index], a)  # √2 R_j⁻¹aᵢ
    X, logw = product_rule(nagq, data.n_terms)
    n = np.ones(len(data.y)) if data.trials is None else np.asarray(data.trials, dtype=float)
    const = data.per_group @ family.loglik_constant(data.y, data.trials)
    return agq_nodes(family.kernel_code, np.ascontiguousarray(eta, dtype=float), np.ascontiguousarray(B),
                     np.ascontiguousarray(a, dtype=float), np.asarray(data.y, dtype=float), n, data.start,
                     np.asarray(const, dtype=float), np.ascontiguousarray(U), Rinv_T, X, logw, with_grad,
                     int(max_stored))


def agq_value_and_grad(design, family, L, positions, beta, u_hat, nagq, data: GroupData | None = None,
                       compiled: bool = True):
    """AGQ deviance and its exact gradient in (θ, β) for a block of k ≥ 1 terms, any link.

    The nodes u_jx = û_j + √2 R_j⁻ᵀ x move with the parameters, and the gradient follows them:
    for a parameter p (an element of β, or the entry L[r, c] of the block's factor, with
    aᵢ = Lᵀxrᵢ so ∂aᵢ/∂L[r, c] = xrᵢ[r] e_c),

    * the modes, by implicit differentiation of Σ_{i∈j} sᵢaᵢ − û_j = 0 with the observed weights
      W°: H°_j dû_j = Σ_{i∈j} [−W°ᵢ ∂ηᵢ aᵢ + sᵢ ∂aᵢ] (∂ηᵢ = xᵢ for β, xrᵢ[r] û_j[c] for L[r, c]),
      H°_j = I + Σ W°ᵢ aᵢaᵢᵀ;
    * the curvature H_j = I + Σ Wᵢ aᵢaᵢᵀ (Fisher weights, as in PIRLS):
      dH_j = Σ [W′ᵢ dη̂ᵢ aᵢaᵢᵀ + Wᵢ(∂aᵢ aᵢᵀ + aᵢ ∂aᵢᵀ)], dη̂ᵢ = ∂ηᵢ + aᵢᵀdû_j; its Cholesky
      factor dR = R Φ(R⁻¹ dH R⁻ᵀ) (Φ: the lower triangle, half the diagonal), d(R⁻ᵀ) = −R⁻ᵀ dRᵀ R⁻ᵀ;
    * the log-likelihood Σ_j [logsumexp_x F_jx − log|R_j|] with
      dF_jx = Σ_{i∈j} g_ix ∂η_ix + c_jxᵀ(dû_j + √2 d(R_j⁻ᵀ) x), g the score at the node,
      c_jx = Σ_{i∈j} g_ix aᵢ − u_jx (∂F/∂u), and d log|R_j| = tr(H_j⁻¹ dH_j)/2.

    With one term it equals :func:`agq_value_and_beta_grad` (tested).

    Parameters
    ----------
    design : Design
        With one random block.
    family : Family
    L : ndarray, shape (k, k)
        The block's relative covariance factor.
    positions : sequence of (int, int)
        The (row, column) of L of each θ component, in θ's order.
    beta : ndarray, shape (p,)
    u_hat : ndarray, shape (J * k,)
        Conditional modes (level-major), from PIRLS, at (θ, β).
    nagq : int
    data : GroupData, optional
        :func:`group_data` of ``design``, when the caller keeps it.
    compiled : bool
        The node sums by the compiled loop where the family has one (else, or False, NumPy).

    Returns
    -------
    (float, ndarray, ndarray)
        −2 log L, its gradient in θ and in β.
    """
    data = group_data(design) if data is None else data
    J, k = data.n_levels, data.n_terms  # J: the patterns
    y, trials, idx, X, xr = data.y, data.trials, data.index, data.X, data.Xr
    n, T = len(y), len(positions)
    rows = np.array([r for r, _ in positions], dtype=int)
    cols = np.array([c for _, c in positions], dtype=int)
    base = data.offset + X @ beta
    a = xr @ L
    U = _modes(data, u_hat)
    eta = base + np.einsum("ik,ik->i", a, U[idx])
    wk = family.working(eta, y, trials)
    H = _level_outer(data, wk.weight, a)
    Hobs = H if family.canonical else _level_outer(data, wk.obs_weight, a)
    R = np.linalg.cholesky(H)
    Rinv = np.linalg.inv(R)
    Rinv_T = np.transpose(Rinv, (0, 2, 1))
    sums = data.per_group  # (J, n)

    def per_level(v):  # Σ_{i∈j} over a trailing shape: (n, ...) → (J, ...)
        return np.asarray(sums @ v.reshape(n, -1)).reshape((J,) + v.shape[1:])

    # parameters: θ's entries of L, then β; ∂η at the modes with u fixed, (n, T + p)
    deta0 = np.concatenate([xr[:, rows] * U[idx][:, cols], X], axis=1)
    rhs = per_level(-wk.obs_weight[:, None, None] * deta0[:, :, None] * a[:, None, :])  # (J, P, k)
    for t in range(T):
        rhs[:, t, cols[t]] += per_level(wk.score * xr[:, rows[t]])
    dU = np.einsum("jab,jpb->jpa", np.linalg.inv(Hobs), rhs)  # dû_j per parameter
    deta_hat = deta0 + np.einsum("ik,ipk->ip", a, dU[idx])
    dH = per_level((wk.dweight[:, None] * deta_hat)[:, :, None, None] * (a[:, :, None] * a[:, None, :])[:, None])
    for t in range(T):
        Q = per_level(wk.weight[:, None] * xr[:, rows[t], None] * a)  # Σ Wᵢ xrᵢ[r] aᵢ, (J, k)
        dH[:, t, cols[t], :] += Q
        dH[:, t, :, cols[t]] += Q
    Y = Rinv[:, None] @ dH @ Rinv_T[:, None]  # R⁻¹ dH R⁻ᵀ
    Phi = np.tril(Y)
    Phi[..., np.arange(k), np.arange(k)] *= 0.5
    dR = R[:, None] @ Phi
    dRinv_T = -(Rinv_T[:, None] @ np.swapaxes(dR, -1, -2) @ Rinv_T[:, None])
    half_tr = 0.5 * np.einsum("jab,jpba->jp", Rinv_T @ Rinv, dH)  # d log|R_j|

    if compiled and family.kernel_code >= 0 and not family.has_dispersion:  # agq_nodes has no φ
        lse, s1, Vx, pc, Cx = _compiled_nodes(data, family, a, eta, U, R, nagq, with_grad=True)
    else:
        lse, s1, Vx, pc, Cx = _numpy_nodes(data, family, a, eta, U, R, nagq, per_level)
    value = float(data.counts @ _per_level(lse, R))
    wj = data.counts  # each pattern counts for its groups
    s1, Vx = s1 * wj[idx], Vx * wj[idx][:, None]
    V = s1[:, None] * U[idx] + np.sqrt(2.0) * np.einsum("iab,ib->ia", Rinv_T[idx], Vx)  # Σ_x P g u_x
    direct = np.concatenate([np.sum(xr[:, rows] * V[:, cols], axis=0), X.T @ s1])
    grad = (direct + np.einsum("jk,jpk->p", wj[:, None] * pc, dU)
            + np.sqrt(2.0) * np.einsum("jpab,jab->p", dRinv_T, wj[:, None, None] * Cx) - wj @ half_tr)
    return -2.0 * value, -2.0 * grad[:T], -2.0 * grad[T:]


def _numpy_nodes(data: GroupData, family, a, eta, U, R, nagq, per_level):
    """The node sums of :func:`_compiled_nodes` by NumPy, in batches of bounded memory (any
    family; the reference of the compiled loop)."""
    y, trials, idx = data.y, data.trials, data.index
    n, J, k = len(y), data.n_levels, data.n_terms
    F = np.vstack([b[-1] for b in _node_batches(data, family, a, eta, U, R, nagq)])
    lse = logsumexp(F, axis=0)
    s1, Vx = np.zeros(n), np.zeros((n, k))      # Σ_x P g and Σ_x P g x per observation
    pc, Cx = np.zeros((J, k)), np.zeros((J, k, k))  # Σ_x P c_x, Σ_x P c_x xᵀ per level
    tb = None if trials is None else trials[None, :]
    first = 0
    for Xc, Ux, eta_x, _ in _node_batches(data, family, a, eta, U, R, nagq, with_terms=False):
        P = np.exp(F[first:first + len(Xc)] - lse[None, :])  # (K_b, J)
        first += len(Xc)
        g = family.score(eta_x, y[None, :], tb)  # (K_b, n)
        Pg = P[:, idx] * g
        s1 += Pg.sum(axis=0)
        Vx += Pg.T @ Xc
        c = np.transpose(per_level(g.T[:, :, None] * a[:, None, :]), (1, 0, 2)) - Ux  # (K_b, J, k)
        Pc = P[:, :, None] * c
        pc += Pc.sum(axis=0)
        Cx += np.einsum("xja,xb->jab", Pc, Xc)
    return lse, s1, Vx, pc, Cx


def agq_value_and_beta_grad(design, family, theta, beta, u_hat, nagq, with_theta=False,
                            data: GroupData | None = None):
    """AGQ deviance and its exact gradient in β (and in θ with ``with_theta``: returns
    (deviance, β-gradient, θ-derivative)), for one scalar random effect and any link, in NumPy:
    the independent reference that :func:`agq_value_and_grad` (which the fits use, its node loops
    compiled) is tested against at k = 1.

    With the nodes u_jk = û_j + √2 x_k / R_j (R_j² = H_j = 1 + Σ_{i∈j} wᵢ aᵢ², aᵢ = θ xrᵢ)
    and F_jk = log ω_k + x_k² + Σ_{i∈j} ℓᵢ(η_ik) − u_jk²/2, the log-likelihood is
    Σ_j [logsumexp_k F_jk − log R_j] + const. Its β-derivative follows the nodes: dû/dβ by
    implicit differentiation of the mode equations (with the observed weights W°: dû_j/dβ =
    −Σ_{i∈j} W°ᵢ aᵢ xᵢ / (1 + Σ_{i∈j} W°ᵢ aᵢ²)), dH_j/dβ = Σ_{i∈j} w′ᵢ aᵢ² dη̂ᵢ/dβ (Fisher weights W
    in H_j, as in PIRLS), and du_jk/dβ = dû_j/dβ − x_k dH_j/dβ / (√2 R_j³). The family answers
    the scores and weights (:meth:`~bayesglmm.families.Family.working`).

    Returns
    -------
    (float, ndarray)
        −2 log L and its gradient in β.
    """
    data = group_data(design) if data is None else data
    y, idx, X, trials, wj = data.y, data.index, data.X, data.trials, data.counts
    a = data.Xr[:, 0] * float(theta)
    base = data.offset + X @ beta
    u_hat = _modes(data, u_hat)[:, 0]  # the patterns' modes, (J,)
    eta = base + a * u_hat[idx]
    wk = family.working(eta, y, trials)
    w, dw, w_obs = wk.weight, wk.dweight, wk.obs_weight
    M = data.per_group  # (J, n), J the patterns
    Hj = 1.0 + M @ (w * a * a)
    Hobs = 1.0 + M @ (w_obs * a * a)  # the mode equations' curvature (= Hj for a canonical link)
    Rj = np.sqrt(Hj)
    du_hat = -(M @ ((w_obs * a)[:, None] * X)) / Hobs[:, None]  # (J, p)
    deta_hat = X + a[:, None] * du_hat[idx]
    dH = M @ ((dw * a * a)[:, None] * deta_hat)  # (J, p)

    Xn, logw = product_rule(nagq, 1)
    x = Xn[:, 0]
    U = u_hat[None, :] + np.sqrt(2.0) * x[:, None] / Rj[None, :]  # (K, J)
    eta_k = base[None, :] + a[None, :] * U[:, idx]  # (K, n)
    mu_k = family.link.inverse(eta_k)
    tb = None if trials is None else trials[None, :]
    ll = family.loglik_kernel(y[None, :], mu_k, tb)
    F = logw[:, None] + (M @ ll.T).T + (M @ family.loglik_constant(y, trials))[None, :] - 0.5 * U**2
    lse = logsumexp(F, axis=0)
    P = np.exp(F - lse[None, :])  # node weights per level
    G = family.score(eta_k, y[None, :], tb)
    # the score in η at each node, (K, n)
    s1 = np.sum(P[:, idx] * G, axis=0)  # Σ_k p_jk g_ik, per observation
    c = (M @ (G * a[None, :]).T).T - U  # ∂F_jk/∂u_jk, (K, J)
    pc = np.sum(P * c, axis=0)
    pcx = np.sum(P * c * x[:, None], axis=0)
    # every sum over groups counts a pattern once per group sharing it
    grad_ll = (X.T @ (s1 * wj[idx]) + du_hat.T @ (wj * pc) - dH.T @ (wj * pcx / (np.sqrt(2.0) * Rj**3))
               - dH.T @ (wj * 0.5 / Hj))
    loglik = float(wj @ (lse - np.log(Rj)) + wj.sum() * (0.5 * np.log(2.0) - 0.5 * np.log(2 * np.pi)))
    if not with_theta:
        return -2.0 * loglik, -2.0 * grad_ll
    # θ (a = θ·xr): the same chain through the nodes, with ∂η/∂θ = xr·u at fixed u
    xr = data.Xr[:, 0]
    u_i = u_hat[idx]
    s_mode = wk.score  # score at the mode
    du_t = (M @ (xr * (s_mode - a * w_obs * u_i))) / Hobs  # dû/dθ, (J,)
    deta_t = xr * u_i + a * du_t[idx]
    dH_t = M @ (2.0 * a * xr * w + a * a * dw * deta_t)  # (J,)
    S = (M @ (G * xr[None, :]).T).T  # Σ_{i∈j} g_ik xr_i, (K, J)
    grad_t = (np.sum(P * U * S, axis=0) + pc * du_t - pcx * dH_t / (np.sqrt(2.0) * Rj**3) - 0.5 * dH_t / Hj)
    return -2.0 * loglik, -2.0 * grad_ll, -2.0 * float(wj @ grad_t)
