"""Crossed and nested random effects: H = ΛᵀZᵀWZΛ + I factored by eliminating one scalar factor.

With several grouping factors H is sparse but not block diagonal. When one factor has a single
term (a random intercept), its part of H is diagonal: order its q₁ columns first,

    H = [[D, B], [Bᵀ, H₂₂]],      S = H₂₂ − Bᵀ D⁻¹ B   (the Schur complement, q₂ × q₂, dense),

so that log det H = Σ log D + log det S, solves cost O(nnz(B) + q₂²), and only S is factored
(a Cholesky of q₂ × q₂). Eliminating the factor with the most levels leaves the smallest S: for
items × subjects (VerbAgg: 316 persons, 24 items) S is 24 × 24; for an InstEval-shaped design
(2,972 students, 1,128 instructors, 14 departments) 1,142 × 1,142. The entries of H⁻¹ that the
analytic gradients need — at the pairs of columns one observation touches — come from S⁻¹ and
P = D⁻¹BS⁻¹ (at B's pattern only) without ever forming the q × q inverse:

    H⁻¹ = [[D⁻¹ + D⁻¹BS⁻¹BᵀD⁻¹, −D⁻¹BS⁻¹], [−S⁻¹BᵀD⁻¹, S⁻¹]].

The sparsity pattern is fixed by the design, so every index array is built once
(:class:`SchurPattern`) and each factorisation only sums numbers into it (:class:`SchurFactor`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import linalg

__all__ = ["SchurPattern", "SchurFactor", "choose_elimination"]

#: the largest Schur complement factored densely (q₂ × q₂ doubles: 128 MB)
MAX_REST = 4000
#: below this q a dense Cholesky of all of H is cheaper than the elimination's bookkeeping
MIN_Q = 200


def choose_elimination(blocks) -> int | None:
    """The random block to eliminate: the scalar (one-term) block with the most levels, when there
    are two or more blocks, q > :data:`MIN_Q` and what remains has at most :data:`MAX_REST`
    columns; else None."""
    q = sum(b.n_levels * b.n_terms for b in blocks)
    if len(blocks) < 2 or q <= MIN_Q:
        return None
    scalar = [j for j, b in enumerate(blocks) if b.n_terms == 1]
    if not scalar:
        return None
    j = max(scalar, key=lambda j: blocks[j].n_levels)
    return j if q - blocks[j].n_levels <= MAX_REST else None


class SchurPattern:
    """The index arrays of the elimination, from the column pattern ``C`` (n × m) of A = ZΛ.

    Parameters
    ----------
    C : ndarray of int, shape (n, m)
        Column of each of a row's m nonzeros.
    q : int
        Columns of A.
    blocks : sequence of RandomBlock
    elim : int
        The block to eliminate (see :func:`choose_elimination`).
    """

    def __init__(self, C, q, blocks, elim):
        self.blocks, self.elim, self.q = tuple(blocks), elim, q
        offsets = np.cumsum([0] + [b.n_levels * b.n_terms for b in blocks])
        positions = np.cumsum([0] + [b.n_terms for b in blocks])
        e0, self.q1 = int(offsets[elim]), blocks[elim].n_levels
        self.e_pos = int(positions[elim])
        self.R = np.array([a for a in range(C.shape[1]) if a != self.e_pos])
        is_elim = np.zeros(q, dtype=bool)
        is_elim[e0:e0 + self.q1] = True
        self.elim_cols, self.rest_cols = np.flatnonzero(is_elim), np.flatnonzero(~is_elim)
        self.q2 = len(self.rest_cols)
        rest_of = np.full(q, -1)
        rest_of[self.rest_cols] = np.arange(self.q2)
        self.c = C[:, self.e_pos] - e0  # eliminated level of each row
        self.rc = rest_of[C[:, self.R]]  # rest column of each other nonzero, (n, m − 1)
        # B's pattern (rows: eliminated levels), in CSR order
        keys = (self.c[:, None].astype(np.int64) * self.q2 + self.rc).ravel()
        uniq, b_inv = np.unique(keys, return_inverse=True)
        self.b_inv = b_inv.reshape(self.rc.shape)  # pattern index of each (row, rest position)
        self.b_rows, self.b_cols = (uniq // self.q2).astype(np.int64), (uniq % self.q2).astype(np.int32)
        self.b_indptr = np.concatenate([[0], np.cumsum(np.bincount(self.b_rows, minlength=self.q1))])
        # H₂₂'s pattern, as flat indices of the dense q₂ × q₂ array
        k2 = (self.rc[:, :, None].astype(np.int64) * self.q2 + self.rc[:, None, :]).ravel()
        self.h22_keys, self.h22_inv = np.unique(k2, return_inverse=True)

    def factor(self, D, w) -> "SchurFactor":
        return SchurFactor(self, D, w)


class SchurFactor:
    """H = ΛᵀZᵀWZΛ + I through its Schur complement (``kind = "schur"``): ``logdet``, ``solve``,
    ``inverse_blocks`` and ``solved_rows`` as :class:`~bayesglmm.frequentist.factor.Factor`."""

    kind = "schur"

    def __init__(self, pattern: SchurPattern, D, w):
        pat = self.pattern = pattern
        de, DR = D[:, pat.e_pos], D[:, pat.R]
        we = w * de
        self.d1 = 1.0 + np.bincount(pat.c, weights=we * de, minlength=pat.q1)
        bvals = np.bincount(pat.b_inv.ravel(), weights=(we[:, None] * DR).ravel(), minlength=len(pat.b_rows))
        self.B = sp.csr_matrix((bvals, pat.b_cols, pat.b_indptr), shape=(pat.q1, pat.q2))
        H22 = np.zeros(pat.q2 * pat.q2)
        H22[pat.h22_keys] = np.bincount(pat.h22_inv, weights=(w[:, None, None] * DR[:, :, None] * DR[:, None, :]).ravel(),
                                        minlength=len(pat.h22_keys))
        H22 = H22.reshape(pat.q2, pat.q2) + np.eye(pat.q2)
        Bs = sp.csr_matrix((bvals / np.sqrt(self.d1[pat.b_rows]), pat.b_cols, pat.b_indptr), shape=(pat.q1, pat.q2))
        S = H22 - (Bs.T @ Bs).toarray()
        self._chol = linalg.cho_factor(S, lower=True, check_finite=False)
        self.logdet = float(np.sum(np.log(self.d1))) + 2.0 * float(np.sum(np.log(np.diagonal(self._chol[0]))))
        self._inverse = None

    def solve(self, rhs):
        pat = self.pattern
        r = np.asarray(rhs, dtype=float)
        col = r.ndim == 1
        r2 = r[:, None] if col else r
        re, rr = r2[pat.elim_cols], r2[pat.rest_cols]
        d = self.d1[:, None]
        yr = linalg.cho_solve(self._chol, rr - self.B.T @ (re / d), check_finite=False)
        ye = (re - self.B @ yr) / d
        out = np.empty_like(r2)
        out[pat.elim_cols], out[pat.rest_cols] = ye, yr
        return out[:, 0] if col else out

    def _pieces(self):
        """(S⁻¹, P = D⁻¹BS⁻¹ at B's pattern, diag of H⁻¹'s eliminated block), formed once per
        factorisation; S⁻¹ from the Cholesky factor by LAPACK's potri."""
        if self._inverse is None:
            pat = self.pattern
            inv, info = linalg.lapack.dpotri(self._chol[0], lower=1)
            if info != 0:
                raise np.linalg.LinAlgError(f"potri failed ({info})")
            Sinv = np.tril(inv) + np.tril(inv, -1).T
            mvals = self.B.data / self.d1[pat.b_rows]  # M = D⁻¹B at its pattern
            M = sp.csr_matrix((mvals, pat.b_cols, pat.b_indptr), shape=(pat.q1, pat.q2))
            P = np.empty(len(mvals))
            per = max(1, 4_000_000 // pat.q2)  # rows of M S⁻¹ formed at a time (≤ 32 MB)
            for r0 in range(0, pat.q1, per):
                r1 = min(pat.q1, r0 + per)
                lo, hi = pat.b_indptr[r0], pat.b_indptr[r1]
                block = np.asarray(M[r0:r1] @ Sinv)
                P[lo:hi] = block[pat.b_rows[lo:hi] - r0, pat.b_cols[lo:hi]]
            hee = 1.0 / self.d1 + np.bincount(pat.b_rows, weights=P * mvals, minlength=pat.q1)
            self._inverse = (Sinv, P, hee)
        return self._inverse

    def solved_rows(self, D) -> np.ndarray:
        """Σ_b H⁻¹[C[i, a], C[i, b]] D[i, b] for every row i and position a, in O(n m²)."""
        pat = self.pattern
        Sinv, P, hee = self._pieces()
        c, rc, e, R = pat.c, pat.rc, pat.e_pos, pat.R
        out = np.zeros_like(D)
        out[:, e] = hee[c] * D[:, e]
        for j, b in enumerate(R):
            peb = -P[pat.b_inv[:, j]]  # H⁻¹[eliminated, rest], at B's pattern
            out[:, e] += peb * D[:, b]
            out[:, b] += peb * D[:, e]
            for i, a in enumerate(R):
                out[:, a] += Sinv[rc[:, i], rc[:, j]] * D[:, b]
        return out

    def inverse_entries(self, rows, cols) -> np.ndarray:
        """H⁻¹[rows, cols] entry by entry (index arrays of one shape; see ``Factor.inverse_entries``),
        from the block inverse of the module docstring: S⁻¹ between two remaining columns, the
        diagonal of the eliminated block, and for a pair with an eliminated level e the row e of
        M S⁻¹ (M = D⁻¹B, a sparse row) — formed for the levels asked only, ≈ 4·10⁶ / q₂ at a time."""
        pat = self.pattern
        Sinv, _, hee = self._pieces()
        shape = np.shape(rows)
        r, c = np.asarray(rows, dtype=np.int64).ravel(), np.asarray(cols, dtype=np.int64).ravel()
        elim_of, rest_of = np.full(pat.q, -1), np.full(pat.q, -1)
        elim_of[pat.elim_cols], rest_of[pat.rest_cols] = np.arange(pat.q1), np.arange(pat.q2)
        swap = (elim_of[r] < 0) & (elim_of[c] >= 0)  # the eliminated column first
        r, c = np.where(swap, c, r), np.where(swap, r, c)
        er, ec = elim_of[r], elim_of[c]
        out = np.empty(len(r))
        rest = er < 0
        out[rest] = Sinv[rest_of[r[rest]], rest_of[c[rest]]]
        same = (er >= 0) & (er == ec)
        out[same] = hee[er[same]]
        other = np.flatnonzero((er >= 0) & (er != ec))
        if len(other):
            M = sp.csr_matrix((self.B.data / self.d1[pat.b_rows], pat.b_cols, pat.b_indptr), shape=(pat.q1, pat.q2))
            levels, where = np.unique(er[other], return_inverse=True)
            per = max(1, 4_000_000 // pat.q2)
            for j0 in range(0, len(levels), per):
                MS = np.asarray(M[levels[j0:j0 + per]] @ Sinv)  # rows of M S⁻¹, (levels, q₂)
                sel = (where >= j0) & (where < j0 + per)
                i, row = other[sel], where[sel] - j0
                to_rest = ec[i] < 0  # (e, r): −(D⁻¹BS⁻¹)[e, r]
                out[i[to_rest]] = -MS[row[to_rest], rest_of[c[i[to_rest]]]]
                i2, row2 = i[~to_rest], row[~to_rest]  # (e₁, e₂), e₁ ≠ e₂: (M S⁻¹ Mᵀ)[e₁, e₂]
                if len(i2):
                    out[i2] = np.asarray(M[ec[i2]].multiply(MS[row2]).sum(axis=1)).ravel()
        return out.reshape(shape)

    def inverse_blocks(self, sizes) -> list[np.ndarray]:
        """H⁻¹'s diagonal blocks per random block (see ``Factor.inverse_blocks``)."""
        pat = self.pattern
        Sinv, _, hee = self._pieces()
        rest_of = np.full(pat.q, -1)
        rest_of[pat.rest_cols] = np.arange(pat.q2)
        out, pos = [], 0
        for j, (g, k) in enumerate(sizes):
            if j == pat.elim:
                out.append(hee[:, None, None].copy())
            else:
                idx = rest_of[pos + np.arange(g)[:, None] * k + np.arange(k)[None, :]]
                out.append(Sinv[idx[:, :, None], idx[:, None, :]])
            pos += g * k
        return out
