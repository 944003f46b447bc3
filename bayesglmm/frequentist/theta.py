"""θ ↔ the random-effect blocks' relative Cholesky factors, and the ZΛ pattern.

Random effects are written ``b = Λ(θ) u`` with spherical ``u ~ N(0, I)``; Λ is block diagonal,
``I_J ⊗ L`` for a block with J levels and lower-triangular relative covariance factor ``L`` (θ holds
L's lower triangle, diagonal ≥ 0; lme4's θ). :class:`ThetaMap` packs the factors into θ and keeps,
computed once per model, the scatter pattern of the nonzeros of ZΛ, by which ZΛ (:class:`ZLambdaOp`)
and H = ΛᵀZᵀWZΛ + I (:func:`penalized_system`, factored by :mod:`bayesglmm.frequentist.factor` or
:mod:`bayesglmm.frequentist.schur`) are assembled from numbers without sparse products.

References
----------
Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear mixed-effects
models using lme4. Journal of Statistical Software 67(1), sec. 3.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..design import Design
from .factor import Factor
from .schur import SchurPattern, choose_elimination

__all__ = ["factor_entries", "lower_factor", "ThetaMap", "ZLambdaOp", "TransposedOp", "penalized_system"]


def factor_entries(block, full: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the entries of a block's factor L that θ holds, in θ's order
    (``np.tril_indices``) for a correlated block; the diagonal for an uncorrelated one; with
    ``full``, every entry of a correlated block (row-major)."""
    k = block.n_terms
    if not block.correlated:
        return np.arange(k), np.arange(k)
    return np.indices((k, k)).reshape(2, -1) if full else np.tril_indices(k)


def lower_factor(M) -> tuple[np.ndarray, np.ndarray]:
    """(L, Q) with M = L Qᵀ, L lower triangular with a nonnegative diagonal and Q orthogonal (the
    QR decomposition of Mᵀ): L is the Cholesky factor of M Mᵀ, also when M is singular."""
    Q, R = np.linalg.qr(np.asarray(M, dtype=float).T)
    d = np.where(np.diag(R) < 0, -1.0, 1.0)
    return (d[:, None] * R).T, Q * d[None, :]


class ThetaMap:
    """Packs each block's lower-triangular factor L into θ and builds ZΛ.

    Parameters
    ----------
    design : Design
    full : collection of int
        Blocks whose factor is any square matrix (every entry in θ, none bounded): the likelihood
        depends on L only through Σ = LLᵀ, so a full factor describes the same models. The user's
        coordinates of a block fitted in a centred internal basis map onto it linearly
        (:mod:`bayesglmm.scaling`).
    """

    def __init__(self, design: Design, full=()):
        self.design = design
        self.blocks = design.random
        self.full = tuple(full)
        self.sizes, self.lower = [], []
        self.entries = [factor_entries(block, k in full) for k, block in enumerate(self.blocks)]  # θ's entries
        for k, (rows, cols) in enumerate(self.entries):
            self.sizes.append(len(rows))
            self.lower += [0.0 if r == c and k not in full else -np.inf for r, c in zip(rows, cols)]
        self.n_theta = int(sum(self.sizes))
        self._schur = None
        if self.blocks:
            self._structure()

    def theta0(self) -> np.ndarray:
        """θ of identity factors (lme4's starting value)."""
        out = []
        for rows, cols in self.entries:
            out += [1.0 if r == c else 0.0 for r, c in zip(rows, cols)]
        return np.asarray(out)

    def factors(self, theta) -> list[np.ndarray]:
        """The lower-triangular L of each block."""
        out, pos = [], 0
        for block, size, (rows, cols) in zip(self.blocks, self.sizes, self.entries):
            k = block.n_terms
            L = np.zeros((k, k))
            L[rows, cols] = theta[pos:pos + size]
            out.append(L)
            pos += size
        return out

    def _structure(self):
        """Index arrays, built once, that assemble ZΛ and ΛᵀZᵀWZΛ + I from numbers without sparse products.

        Every observation has the same number m of nonzeros in ZΛ (n_terms of each block), at
        columns ``C[i]``; D = [Xr_b L_b]_b holds their values. Then (ZΛ)ᵀW(ZΛ) sums
        D[i, a] D[i, b] wᵢ into entry (C[i, a], C[i, b]): a fixed scatter pattern.
        """
        d = self.design
        n, q = d.nobs, sum(b.n_levels * b.n_terms for b in self.blocks)
        cols, off = [], 0
        for b in self.blocks:
            cols.append(off + b.index[:, None] * b.n_terms + np.arange(b.n_terms)[None, :])
            off += b.n_levels * b.n_terms
        C = np.hstack(cols)
        self._C = C  # column of each of a row's m nonzeros of ZΛ
        m = C.shape[1]
        rows = np.repeat(np.arange(n), m)
        flat = C.ravel()
        self._perm = np.lexsort((rows, flat))  # COO (row-major) → CSC order
        self._a_indices = rows[self._perm]
        self._a_indptr = np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=q))])
        ia, ib = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        keys = (C[:, ib.ravel()].astype(np.int64) * q + C[:, ia.ravel()]).ravel()  # column-major key
        diag = np.arange(q, dtype=np.int64) * (q + 1)
        uniq, inv = np.unique(np.concatenate([keys, diag]), return_inverse=True)
        self._h_inv, self._h_diag, self._h_size = inv[:len(keys)], inv[len(keys):], len(uniq)
        self._h_indices = (uniq % q).astype(np.int32)
        self._h_indptr = np.concatenate([[0], np.cumsum(np.bincount(uniq // q, minlength=q))]).astype(np.int32)
        self._q, self._m = q, m
        elim = choose_elimination(self.blocks)
        self._schur = None if elim is None else SchurPattern(C, q, self.blocks, elim)

    def theta_positions(self):
        """For each θ component: (position a in a row's nonzeros, block, row r of L) — ∂D[:, a]/∂θ = Xr_b[:, r]."""
        out, off = [], 0
        for b, (rows, cols) in zip(self.blocks, self.entries):
            k = b.n_terms
            for r, c in zip(rows, cols):
                out.append((off + c, b, r))
            off += k
        return out

    def values(self, theta) -> np.ndarray:
        """D(θ), shape (n, m): the nonzeros of ZΛ row by row."""
        return np.hstack([b.Xr @ L for b, L in zip(self.blocks, self.factors(theta))])

    def ZLambda(self, theta) -> "ZLambdaOp":
        """ZΛ(θ) as a linear operator (``A @ v``, ``A.T @ r``, ``A.shape``) over the fixed pattern,
        which :func:`penalized_system` factors by the design's structure."""
        n = self.design.nobs
        if not self.blocks:
            return ZLambdaOp(self, np.zeros((n, 0)), (n, 0))
        return ZLambdaOp(self, self.values(theta), (n, self._q))

    @property
    def block_diagonal(self) -> bool:
        """One grouping factor with k ≥ 2 terms: H is block diagonal, G blocks of k × k."""
        return len(self.blocks) == 1 and self.blocks[0].n_terms >= 2

    def system(self, D, w) -> sp.csc_matrix:
        """H = ΛᵀZᵀWZΛ + I from D(θ) and the weights, by one scatter-add."""
        prod = (D[:, :, None] * D[:, None, :] * w[:, None, None]).ravel()
        data = np.bincount(self._h_inv, weights=prod, minlength=self._h_size)
        data[self._h_diag] += 1.0
        return sp.csc_matrix((data, self._h_indices, self._h_indptr), shape=(self._q, self._q))

    def factor(self, D, w) -> "Factor":
        """The factorisation of H = ΛᵀZᵀWZΛ + I: its G k × k blocks summed per level and inverted
        at once when :attr:`block_diagonal`; with several grouping factors, the Schur complement
        after eliminating the largest random-intercept factor (:mod:`bayesglmm.frequentist.schur`)
        when it is at most 4000 × 4000; else the sparse H of :meth:`system`."""
        if self._schur is not None:
            return self._schur.factor(D, w)
        if len(self.blocks) == 1 and self.blocks[0].n_terms == 1:  # (1 | g): H is diagonal
            block = self.blocks[0]
            return Factor.from_diagonal(1.0 + np.bincount(block.index, weights=D[:, 0] ** 2 * w,
                                                           minlength=block.n_levels))
        if not self.block_diagonal:
            return Factor(self.system(D, w))
        block = self.blocks[0]
        G, k = block.n_levels, block.n_terms
        Hb = np.zeros((G, k, k))
        for a in range(k):
            for b in range(a, k):
                Hb[:, a, b] = Hb[:, b, a] = np.bincount(block.index, weights=D[:, a] * D[:, b] * w, minlength=G)
        Hb += np.eye(k)
        return Factor.from_blocks(Hb)

    #: the largest q for which H⁻¹ is formed densely (128 MB)
    DENSE_INVERSE_MAX = 4000

    @property
    def rows_solvable(self) -> bool:
        """Whether :meth:`solved_rows` is affordable: one grouping factor (diagonal or block-diagonal
        H), q ≤ :attr:`DENSE_INVERSE_MAX`, or H⁻¹Aᵀ small enough to form (q·n ≤ 4e6)."""
        return (len(self.blocks) == 1 or self._schur is not None or self._q <= self.DENSE_INVERSE_MAX
                or self._q * self.design.nobs <= 4_000_000)

    def solved_rows(self, fac: "Factor", D) -> np.ndarray | None:
        """``(H⁻¹Aᵀ)[C[i, a], i]`` for every nonzero (i, a) of A = ZΛ, shape (n, m): the entries of
        H⁻¹aᵢ where row aᵢ of A is nonzero, i.e. Σ_b H⁻¹[C[i, a], C[i, b]] D[i, b]. Row i's leverage
        is aᵢᵀH⁻¹aᵢ = Σₐ D[i, a]·result[i, a]. O(n k²) when H is diagonal or block diagonal; from
        the dense H⁻¹ (q ≤ :attr:`DENSE_INVERSE_MAX`, O(q³ + n m²)) or H⁻¹Aᵀ otherwise; None when
        neither fits in memory."""
        if fac.kind == "diag":
            return D / fac.diag[self._C]
        if fac.kind == "block":
            return np.einsum("iab,ib->ia", fac.inv[self.blocks[0].index], D)
        if fac.kind == "schur":
            return fac.solved_rows(D)
        C = self._C
        if self._q <= self.DENSE_INVERSE_MAX:
            Hinv = np.asarray(fac.solve(np.eye(self._q)))
            return np.einsum("iab,ib->ia", Hinv[C[:, :, None], C[:, None, :]], D)
        n = D.shape[0]
        if not self.rows_solvable:
            return None
        At = np.zeros((self._q, n))
        rows = np.arange(n)[:, None]
        np.add.at(At, (C, np.broadcast_to(rows, C.shape)), D)
        return fac.solve(At).T[rows, C]

    def Lambda(self, theta) -> sp.csc_matrix:
        """Λ(θ) = blockdiag(I_J ⊗ L), sparse, shape (q, q)."""
        return sp.block_diag([sp.kron(sp.identity(b.n_levels), L) for b, L in zip(self.blocks, self.factors(theta))],
                             format="csc")


class ZLambdaOp:
    """A = ZΛ(θ) by its nonzeros: row i holds D[i, a] at column C[i, a] (:class:`ThetaMap`).

    ``A @ v`` gathers, ``A.T @ r`` scatters by ``np.bincount``: O(n·m) per column, with none of a
    sparse matrix's construction cost, which dominated small fits. ``sparse()`` gives the CSC
    matrix when one is needed.
    """

    def __init__(self, tmap: "ThetaMap", D: np.ndarray, shape: tuple):
        self.tmap, self.D, self.shape = tmap, D, shape

    def __matmul__(self, v):
        v = np.asarray(v, dtype=float)
        if self.shape[1] == 0:
            return np.zeros((self.shape[0],) + v.shape[1:])
        C = self.tmap._C
        if v.ndim == 1:
            return np.einsum("ia,ia->i", self.D, v[C])
        return np.einsum("ia,iap->ip", self.D, v[C])

    @property
    def T(self) -> "TransposedOp":
        return TransposedOp(self)

    def sparse(self) -> sp.csc_matrix:
        """A as a SciPy CSC matrix."""
        t = self.tmap
        if self.shape[1] == 0:
            return sp.csc_matrix(self.shape)
        return sp.csc_matrix((self.D.ravel()[t._perm], t._a_indices, t._a_indptr), shape=self.shape)


class TransposedOp:
    """Aᵀ for :class:`ZLambdaOp`: ``Aᵀ @ r`` sums D[i, a]·r[i] into column C[i, a]."""

    def __init__(self, op: ZLambdaOp):
        self.op = op
        self.shape = op.shape[::-1]

    def __matmul__(self, r):
        r = np.asarray(r, dtype=float)
        op = self.op
        q = op.shape[1]
        if q == 0:
            return np.zeros((0,) + r.shape[1:])
        flat = op.tmap._C.ravel()
        if r.ndim == 1:
            return np.bincount(flat, weights=(op.D * r[:, None]).ravel(), minlength=q)
        return np.column_stack([np.bincount(flat, weights=(op.D * r[:, j, None]).ravel(), minlength=q)
                                for j in range(r.shape[1])]) if r.shape[1] else np.zeros((q, 0))


def penalized_system(A, w) -> Factor:
    """Factor H = AᵀWA + I (A = ZΛ, W = diag(w)), the matrix of PIRLS and of the LMM.

    A :class:`ZLambdaOp` is assembled by its precomputed scatter pattern (block by block for one
    grouping factor, :meth:`ThetaMap.factor`); any other sparse A by sparse products.
    """
    if isinstance(A, ZLambdaOp):
        return A.tmap.factor(A.D, np.asarray(w, dtype=float))
    return Factor((A.T @ sp.diags(w) @ A + sp.identity(A.shape[1])).tocsc())
