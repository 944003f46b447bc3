"""The factorisation of H = ΛᵀZᵀWZΛ + I, the curvature of the penalized least squares of PIRLS,
the LMMs and the Laplace approximation: one class for its diagonal, block-diagonal, dense and sparse
forms (the Schur complement of several grouping factors is :mod:`bayesglmm.frequentist.schur`), each
with ``solve``, ``logdet`` and ``inverse_blocks``; the kind is chosen where H is assembled
(:meth:`bayesglmm.frequentist.theta.ThetaMap.factor`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import linalg
from scipy.sparse.linalg import splu

__all__ = ["Factor"]


class Factor:
    """Factorisation of the SPD matrix H = ΛᵀZᵀWZΛ + I: solve() and logdet.

    ``kind`` is ``"diag"`` when H is diagonal (one scalar random effect per observation
    group, e.g. a single ``(1 | g)``): inverted elementwise; ``"block"`` when H is block
    diagonal with G blocks of k × k (one grouping factor with k ≥ 2 terms; :meth:`from_blocks`):
    all blocks inverted at once, vectorized, in O(G k³); ``"dense"`` when H is small
    (q ≤ ``DENSE_MAX``): a dense Cholesky, cheaper than a sparse factorization's overhead
    at that size; otherwise ``"sparse"``: SuperLU.
    """

    DENSE_MAX = 400

    def __init__(self, H: sp.csc_matrix):
        self.H = H
        q = H.shape[0]
        if H.nnz == q:
            self.kind, self.diag = "diag", H.diagonal()
            self.logdet = float(np.sum(np.log(self.diag)))
        elif q <= self.DENSE_MAX:
            self.kind = "dense"
            self._chol = linalg.cho_factor(H.toarray(), lower=True, check_finite=False)
            self.logdet = 2.0 * float(np.sum(np.log(np.diagonal(self._chol[0]))))
        else:
            self.kind = "sparse"
            self._lu = splu(H, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
            self.logdet = float(np.sum(np.log(np.abs(self._lu.U.diagonal()))))

    @classmethod
    def from_diagonal(cls, diag: np.ndarray) -> "Factor":
        """H = diag(``diag``), assembled without a sparse matrix (one scalar random effect)."""
        self = cls.__new__(cls)
        self.kind, self.H, self.diag = "diag", None, diag
        self.logdet = float(np.sum(np.log(diag)))
        return self

    @classmethod
    def from_blocks(cls, blocks: np.ndarray) -> "Factor":
        """H = blockdiag(blocks), ``blocks`` of shape (G, k, k), each SPD: H⁻¹'s blocks and log det."""
        self = cls.__new__(cls)
        self.kind, self.H = "block", None
        chol = np.linalg.cholesky(blocks)
        self.logdet = 2.0 * float(np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2))))
        eye = np.broadcast_to(np.eye(blocks.shape[1]), blocks.shape)
        linv = np.linalg.solve(chol, eye)  # L⁻¹, so H⁻¹ = L⁻ᵀL⁻¹
        self.inv = np.einsum("gba,gbc->gac", linv, linv)
        return self

    def __getstate__(self):  # SuperLU objects do not pickle: keep H, factor it again on loading
        if self.kind == "block":
            return {"kind": "block", "inv": self.inv, "logdet": self.logdet}
        return {"kind": "diag", "diag": self.diag} if self.H is None else {"H": self.H}

    def __setstate__(self, state):
        if state.get("kind") == "block":
            self.kind, self.H, self.inv, self.logdet = "block", None, state["inv"], state["logdet"]
        elif state.get("kind") == "diag":
            self.__dict__.update(Factor.from_diagonal(state["diag"]).__dict__)
        else:
            self.__init__(state["H"])

    def solve(self, rhs):
        if self.kind == "diag":
            return rhs / (self.diag[:, None] if np.ndim(rhs) == 2 else self.diag)
        if self.kind == "block":
            G, k, _ = self.inv.shape
            r = np.asarray(rhs, dtype=float)
            out = np.einsum("gab,gb...->ga...", self.inv, r.reshape((G, k) + r.shape[1:]))
            return out.reshape(r.shape)
        if self.kind == "dense":
            return linalg.cho_solve(self._chol, rhs, check_finite=False)
        return self._lu.solve(rhs)

    def inverse_entries(self, rows, cols) -> np.ndarray:
        """H⁻¹[rows, cols], entry by entry (index arrays of one shape), never the whole inverse.

        Diagonal H: 1/H_rr where r = c, else 0; block-diagonal H: the level's k × k block of H⁻¹ where
        both columns are of one level, else 0; otherwise the columns of H⁻¹ named in ``cols`` by
        solving for unit vectors, ≈ 2·10⁷ / q columns at a time (O(q) memory per column)."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        if self.kind == "diag":
            return np.where(rows == cols, 1.0 / self.diag[rows], 0.0)
        if self.kind == "block":
            k = self.inv.shape[1]
            same = rows // k == cols // k
            return np.where(same, self.inv[rows // k, rows % k, np.where(same, cols % k, 0)], 0.0)
        q = self.H.shape[0]
        flat_rows, flat_cols = rows.ravel(), cols.ravel()
        out = np.empty(flat_rows.shape)
        wanted, where = np.unique(flat_cols, return_inverse=True)
        per = max(1, int(2e7 // q))
        for j0 in range(0, len(wanted), per):
            chunk = wanted[j0:j0 + per]
            E = np.zeros((q, len(chunk)))
            E[chunk, np.arange(len(chunk))] = 1.0
            sol = np.asarray(self.solve(E))
            sel = (where >= j0) & (where < j0 + len(chunk))
            out[sel] = sol[flat_rows[sel], where[sel] - j0]
        return out.reshape(rows.shape)

    def inverse_blocks(self, sizes) -> list[np.ndarray]:
        """The diagonal blocks of H⁻¹ for consecutive runs of ``sizes`` [(n_levels, k), ...] — one
        per random block, each (n_levels, k, k). Block and diagonal H: directly; otherwise by
        solving for unit columns in chunks of ≈ 2·10⁷ / q (never the whole q × q inverse)."""
        if self.kind == "block" and len(sizes) == 1:
            return [self.inv]
        if self.kind == "diag":
            d, out, pos = 1.0 / self.diag, [], 0
            for g, k in sizes:
                out.append(np.einsum("ga,ab->gab", d[pos:pos + g * k].reshape(g, k), np.eye(k)))
                pos += g * k
            return out
        q = sum(g * k for g, k in sizes)
        out, pos = [], 0
        for g, k in sizes:
            blocks = np.empty((g, k, k))
            per = max(1, int(2e7 // (q * k)))  # levels per chunk
            for g0 in range(0, g, per):
                g1 = min(g, g0 + per)
                cols = pos + np.arange(g0 * k, g1 * k)
                E = np.zeros((q, len(cols)))
                E[cols, np.arange(len(cols))] = 1.0
                sol = np.asarray(self.solve(E))[cols]  # rows of the same levels, (len, len)
                idx = np.arange(g1 - g0)[:, None] * k + np.arange(k)[None, :]
                blocks[g0:g1] = sol[idx[:, :, None], idx[:, None, :]]
            out.append(blocks)
            pos += g * k
        return out
