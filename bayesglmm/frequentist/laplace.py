"""Maximum likelihood by the Laplace approximation, lme4's way, on a :class:`Design`.

Random effects are written ``b = Λ(θ) u`` with spherical ``u ~ N(0, I)``; Λ is block
diagonal, ``I_J ⊗ L`` for a block with J levels and lower-triangular relative
covariance factor ``L`` (θ holds L's lower triangle, diagonal ≥ 0). For fixed (θ, β),
penalized IRLS finds the conditional mode û of

    ℓ(y | η) − ‖u‖²/2,      η = offset + Xβ + ZΛu,

and the Laplace approximation of the marginal log-likelihood is

    log L(θ, β) ≈ ℓ(y | η̂) − ‖û‖²/2 − ½ log det(ΛᵀZᵀ W Z Λ + I),

with W the IRLS (Fisher) weights at η̂ (Bates et al. 2015, eqs. 28–31; for the
canonical links the Fisher and observed information coincide). ``laplace_deviance``
returns −2 log L as a function of the packed vector (θ, β), which ``fit_laplace``
minimises with L-BFGS-B (Powell if that fails) using its analytic gradient (any link, and AGQ's
exact one through its adaptive nodes) and finishes by Newton steps while the Newton
decrement is above 1e-8. A fit counts as converged only if the decrement gᵀH⁻¹g at the end, on
the gradient projected onto the free parameters, is at most ``DECREMENT_TOL`` (1e-6 of
log-likelihood left to gain), not merely because the optimiser's steps became small. Standard
errors come from the Hessian in (θ, β) by differences of that gradient, as glmer reports them.

References
----------
Bates, D., Mächler, M., Bolker, B. and Walker, S. (2015). Fitting linear mixed-effects
models using lme4. Journal of Statistical Software 67(1).
Breslow, N. E. and Clayton, D. G. (1993). Approximate inference in generalized linear
mixed models. JASA 88, 9–25.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import linalg, optimize
from scipy.sparse.linalg import splu

from ..design import Design
from ..families import Family
from ..results import NotApplicableError
from .agq import agq_loglik, agq_value_and_grad, check_agq, group_data
from .schur import SchurPattern, choose_elimination

__all__ = ["lower_factor", "ThetaMap", "laplace_deviance", "pirls", "fit_laplace", "LaplaceState", "safe_inverse"]


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

    def factor(self, D, w) -> "_Factor":
        """The factorisation of H = ΛᵀZᵀWZΛ + I: its G k × k blocks summed per level and inverted
        at once when :attr:`block_diagonal`; with several grouping factors, the Schur complement
        after eliminating the largest random-intercept factor (:mod:`bayesglmm.frequentist.schur`)
        when it is at most 4000 × 4000; else the sparse H of :meth:`system`."""
        if self._schur is not None:
            return self._schur.factor(D, w)
        if len(self.blocks) == 1 and self.blocks[0].n_terms == 1:  # (1 | g): H is diagonal
            block = self.blocks[0]
            return _Factor.from_diagonal(1.0 + np.bincount(block.index, weights=D[:, 0] ** 2 * w,
                                                           minlength=block.n_levels))
        if not self.block_diagonal:
            return _Factor(self.system(D, w))
        block = self.blocks[0]
        G, k = block.n_levels, block.n_terms
        Hb = np.zeros((G, k, k))
        for a in range(k):
            for b in range(a, k):
                Hb[:, a, b] = Hb[:, b, a] = np.bincount(block.index, weights=D[:, a] * D[:, b] * w, minlength=G)
        Hb += np.eye(k)
        return _Factor.from_blocks(Hb)

    #: the largest q for which H⁻¹ is formed densely (128 MB)
    DENSE_INVERSE_MAX = 4000

    @property
    def rows_solvable(self) -> bool:
        """Whether :meth:`solved_rows` is affordable: one grouping factor (diagonal or block-diagonal
        H), q ≤ :attr:`DENSE_INVERSE_MAX`, or H⁻¹Aᵀ small enough to form (q·n ≤ 4e6)."""
        return (len(self.blocks) == 1 or self._schur is not None or self._q <= self.DENSE_INVERSE_MAX
                or self._q * self.design.nobs <= 4_000_000)

    def solved_rows(self, fac: "_Factor", D) -> np.ndarray | None:
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
    def T(self) -> "_TransposedOp":
        return _TransposedOp(self)

    def sparse(self) -> sp.csc_matrix:
        """A as a SciPy CSC matrix."""
        t = self.tmap
        if self.shape[1] == 0:
            return sp.csc_matrix(self.shape)
        return sp.csc_matrix((self.D.ravel()[t._perm], t._a_indices, t._a_indptr), shape=self.shape)


class _TransposedOp:
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


@dataclass(frozen=True)
class EngineResult:
    """What an engine (:func:`fit_laplace`, :func:`~bayesglmm.frequentist.pql.fit_pql`,
    :func:`~bayesglmm.frequentist.lmm.fit_lmm`) hands :class:`~bayesglmm.frequentist.fit.MLFit`.

    Attributes
    ----------
    theta : ndarray
        Lower triangles of the random-effect Cholesky factors (absolute scale).
    beta, vcov_beta : ndarray
        Fixed effects and their covariance.
    loglik : float
        With every constant; NaN for PQL (no likelihood).
    state : LaplaceState
        Conditional modes and the factorisation at the estimates.
    tmap : ThetaMap
    converged : bool
    message : str
        The optimiser's account.
    n_eval : int
        Deviance (or criterion) evaluations.
    vcov_full : ndarray or None
        Covariance of (θ, β) from the Hessian (Laplace/AGQ).
    sigma : float or None
        The residual (Gaussian) or PQL dispersion SD, where estimated.
    decrement : float
        Laplace/AGQ: the Newton decrement gᵀH⁻¹g of the deviance at the estimates (θ held on a
        bound excluded), four times the log-likelihood a Newton step would still gain; NaN where
        not computed. ``converged`` requires it at most :data:`DECREMENT_TOL`.
    internal : EngineResult or None
        The engine's own result in the internal parametrization it fitted
        (:mod:`bayesglmm.scaling`), when this one is mapped back to the user's; None on the
        internal result itself. Singularity and profiles are judged there (scale-free).
    """

    theta: np.ndarray
    beta: np.ndarray
    vcov_beta: np.ndarray
    loglik: float
    state: "LaplaceState"
    tmap: "ThetaMap"
    converged: bool
    message: str
    n_eval: int
    vcov_full: np.ndarray | None = None
    sigma: float | None = None
    decrement: float = float("nan")
    internal: "EngineResult | None" = None


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


@dataclass
class LaplaceState:
    """PIRLS result at one (θ, β): conditional modes and the pieces of the deviance."""

    u: np.ndarray
    eta: np.ndarray
    loglik_cond: float
    logdet: float
    factor: "_Factor"  # of ΛᵀZᵀWZΛ + I
    converged: bool

    @property
    def loglik(self) -> float:
        return self.loglik_cond - 0.5 * float(self.u @ self.u) - 0.5 * self.logdet


class _Factor:
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
    def from_diagonal(cls, diag: np.ndarray) -> "_Factor":
        """H = diag(``diag``), assembled without a sparse matrix (one scalar random effect)."""
        self = cls.__new__(cls)
        self.kind, self.H, self.diag = "diag", None, diag
        self.logdet = float(np.sum(np.log(diag)))
        return self

    @classmethod
    def from_blocks(cls, blocks: np.ndarray) -> "_Factor":
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
            self.__dict__.update(_Factor.from_diagonal(state["diag"]).__dict__)
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


def penalized_system(A, w) -> _Factor:
    """Factor H = AᵀWA + I (A = ZΛ, W = diag(w)), the matrix of PIRLS and of the LMM.

    A :class:`ZLambdaOp` is assembled by its precomputed scatter pattern (block by block for one
    grouping factor, :meth:`ThetaMap.factor`); any other sparse A by sparse products.
    """
    if isinstance(A, ZLambdaOp):
        return A.tmap.factor(A.D, np.asarray(w, dtype=float))
    return _Factor((A.T @ sp.diags(w) @ A + sp.identity(A.shape[1])).tocsc())


def score_weights(family: Family, eta, trials):
    n = 1.0 if trials is None else trials
    mu = family.link.inverse(eta)
    dmu = family.link.inverse_deriv(eta)
    var = np.maximum(family.variance(family.clip_mu(mu)), 1e-300)
    return mu, n * mu, dmu / var, n * dmu**2 / var


def loglik_constant(design: Design, family: Family) -> float:
    """Σᵢ of the log-likelihood terms free of the parameters (:meth:`Family.loglik_constant`)."""
    return float(np.sum(family.loglik_constant(design.y, design.trials)))


def saturated_loglik(design: Design, family: Family) -> float:
    """Σᵢ ℓ(yᵢ; μ̂ᵢ), the saturated model's log-likelihood (:meth:`Family.loglik_saturated`): PIRLS
    sums :meth:`Family.loglik_relative` and adds this once, so that its sums stay accurate when the
    counts are large."""
    return float(np.sum(family.loglik_saturated(design.y, design.trials)))


def pirls(design: Design, family: Family, A: np.ndarray, beta, u0=None, tol=1e-10, maxit=200,
          constant: float | None = None, utol: float | None = None) -> LaplaceState:
    """Penalized IRLS for the conditional modes û given β and A = ZΛ.

    Maximises ℓ(y | offset + Xβ + A u) − ‖u‖²/2 by Fisher scoring with step halving, until the
    objective changes by less than ``tol`` (relative) and the step by less than ``utol`` (its largest
    entry and its length in the norm of the curvature H). Under a
    canonical link Fisher scoring is Newton's method (a step below 1e-7 leaves an error of about
    its square); under another link it converges linearly, so ``utol`` defaults to 1e-11 there —
    the deviance must not depend on the warm start at the level its derivatives are checked.
    ``constant`` is :func:`saturated_loglik` when the caller has it (computed here otherwise): the
    log-likelihood is summed relative to the saturated fit (:meth:`Family.loglik_relative`).
    """
    if utol is None:
        utol = 1e-7 if family.canonical else 1e-11
    y, trials = design.y, design.trials
    base = design.offset + design.X @ beta
    u = np.zeros(A.shape[1]) if u0 is None else u0.copy()
    const = saturated_loglik(design, family) if constant is None else constant

    def objective(u):
        eta = base + A @ u
        return float(np.sum(family.loglik_relative(y, family.link.inverse(eta), trials))) + const - 0.5 * float(u @ u)

    def system(eta):
        _, mean, s, w = score_weights(family, eta, trials)
        return mean, s, penalized_system(A, w)

    y_size = float(np.sum(np.abs(y)))
    obj = objective(u)
    if u0 is not None and not np.isfinite(obj):  # a warm start from far away (the modes at θ ≈ 0 are
        u = np.zeros(A.shape[1])                  # b/θ: huge) can overflow here: start from 0 instead
        obj = objective(u)
    converged = False
    for _ in range(maxit):
        eta = base + A @ u
        mean, s, lu = system(eta)
        grad = A.T @ ((y - mean) * s) - u
        delta = lu.solve(grad)
        # the objective's own rounding: each row's μ − y is a difference of numbers of size y, so a step
        # that changes it by less than ε·Σ(|y| + |μ|) is no worse (with counts near 10⁷ that is 10⁻⁷, and
        # steps refused for it stalled PIRLS short of the mode)
        slack = 1e-12 + 8.0 * np.finfo(float).eps * (y_size + float(np.sum(np.abs(mean))))
        step = 1.0
        while True:
            new = objective(u + step * delta)
            if new >= obj - slack or step < 1e-8:
                break
            step /= 2
        u, change = u + step * delta, new - obj
        obj = new
        # the step's size in the curvature's norm, √(δᵀHδ) = √(gᵀH⁻¹g), as well as its largest entry:
        # with counts near 10⁷ (H ≈ 10⁷) a step of 10⁻⁷ in u still moved μ by 0.1 and the deviance's
        # gradient by 1 between calls from different warm starts
        size = max(float(np.max(np.abs(step * delta), initial=0.0)), step * np.sqrt(max(float(grad @ delta), 0.0)))
        if abs(change) < tol * (1 + abs(obj)) and size < utol:
            converged = True
            break
    eta = base + A @ u
    _, _, lu = system(eta)
    logdet = lu.logdet
    ll = float(np.sum(family.loglik_relative(y, family.link.inverse(eta), trials))) + const
    return LaplaceState(u=u, eta=eta, loglik_cond=ll, logdet=logdet, factor=lu, converged=converged)


def laplace_deviance(design: Design, family: Family, nagq: int = 1, full=()):
    """The deviance −2 log L as a function of the packed vector ``(θ, β)``.

    ``nagq = 1``: the Laplace approximation; ``nagq > 1``: adaptive Gauss–Hermite
    quadrature with that many nodes per dimension (one grouping factor only; see
    :mod:`bayesglmm.frequentist.agq`), centred at the same PIRLS modes. ``full``: the blocks
    whose factor is a full square matrix (:class:`ThetaMap`).

    Returns
    -------
    devfun : callable
        ``devfun(params) -> float``; its attribute ``state(params)`` gives the
        :class:`LaplaceState` (conditional modes) at those parameters.
    tmap : ThetaMap
    """
    if family.has_scale:
        raise NotApplicableError("the Laplace engine is for non-Gaussian families; a Gaussian model is an LMM "
                         "(its Laplace approximation is exact): use method='ml' or 'reml'")
    if nagq != 1:
        check_agq(design, nagq)
    agq_data = group_data(design) if nagq != 1 else None  # each distinct group pattern once
    tmap = ThetaMap(design, full)
    cache = {"u": None}
    const = saturated_loglik(design, family)

    def state(params):
        theta, beta = params[:tmap.n_theta], params[tmap.n_theta:]
        st = pirls(design, family, tmap.ZLambda(theta), beta, u0=cache["u"], constant=const)
        cache["u"] = st.u
        return st

    def devfun(params):
        params = np.asarray(params, dtype=float)
        st = state(params)
        if nagq == 1:
            return -2.0 * st.loglik
        L, u = tmap.factors(params[:tmap.n_theta])[0], st.u
        if tmap.full:  # the product rule is not rotation invariant: integrate on the lower-triangular
            # factor of LLᵀ (L = L_c Qᵀ, u_c = Qᵀ u), as a fit does, so that a full factor is the same model
            L, Q = lower_factor(L)
            u = (u.reshape(-1, L.shape[0]) @ Q).ravel()
        return -2.0 * agq_loglik(design, family, L, params[tmap.n_theta:], u, nagq, agq_data)

    devfun.state = state
    # value_and_grad calls state, not devfun: no reference cycle (devfun's attributes → itself) to
    # keep ThetaMap's index arrays (8 MB at 100,000 rows) alive until the garbage collector runs
    devfun.value_and_grad = _value_and_grad(design, family, tmap, state, nagq, agq_data)
    return devfun, tmap


def _value_and_grad(design, family, tmap, state, nagq=1, agq_data=None):
    """Deviance and its gradient in (θ, β), analytic for every link.

    With û the conditional mode, s = ∂ℓ/∂η at û, W the Fisher weights (those of PIRLS and of
    the Laplace curvature), w′ = dW/dη, H = AᵀWA + I (A = ZΛ), hᵢ = aᵢᵀH⁻¹aᵢ, and W° the
    observed weights −∂²ℓ/∂η² with H° = AᵀW°A + I (the Hessian of the mode equations; H° = H
    for a canonical link), the envelope theorem and implicit differentiation of the mode
    equations Aᵀs − u = 0 give, for a parameter x,

        ∂dev/∂x = −2 sᵀ∂ηₓ + 2 tr(H⁻¹AᵀW ∂A) + Σᵢ hᵢ w′ᵢ ∂η̂ᵢ/∂x,
        ∂η̂/∂x = ∂ηₓ + A H°⁻¹(∂Aᵀ s − AᵀW° ∂ηₓ),

    with ∂ηₓ = X (β, where ∂A = 0) or ∂A û (θ: one known column of nonzeros of A per element of
    a factor L). The family answers s, W, w′ and W° (:meth:`~bayesglmm.families.Family.working`).
    Everything needs H⁻¹ only where A is nonzero (:meth:`ThetaMap.solved_rows`): O(n k²) for one
    grouping factor, from H⁻¹Aᵀ otherwise (None when that is too large: the optimiser then uses
    differences). AGQ (``nagq > 1``) has its own exact gradient through the adaptive nodes, for one
    term and for a block of k on the product rule (:func:`~bayesglmm.frequentist.agq.agq_value_and_grad`,
    its node loops compiled; the scalar :func:`~bayesglmm.frequentist.agq.agq_value_and_beta_grad`
    is the reference it is tested against at k = 1).
    """
    if not tmap.blocks:
        return None
    X, y, nt = design.X, design.y, tmap.n_theta
    C, q = tmap._C, tmap._q
    positions = tmap.theta_positions()
    entries = [(r, c) for c, _, r in positions]  # θ's entries (row, column) of L, one block

    def analytic(params, st):
        """(β-gradient, θ-gradient), or None when H⁻¹ at A's nonzeros is too large."""
        th = params[:nt]
        D = tmap.values(th)
        hia = tmap.solved_rows(st.factor, D)
        if hia is None:
            return None
        A, fac = tmap.ZLambda(th), st.factor
        wk = family.working(st.eta, y, design.trials)
        w, dw, resid = wk.weight, wk.dweight, wk.score
        w_obs, fac_obs = (w, fac) if family.canonical else (wk.obs_weight, penalized_system(A, wk.obs_weight))
        lev_dw = np.sum(D * hia, axis=1) * dw
        deta = X - A @ fac_obs.solve(np.asarray(A.T @ (w_obs[:, None] * X)))
        g_beta = -2.0 * X.T @ resid + deta.T @ lev_dw
        xr = np.column_stack([block.Xr[:, r] for _, block, r in positions])  # ∂A's nonzeros, (n, nθ)
        cols = [a for a, _, _ in positions]
        dA_u = xr * st.u[C[:, cols]]  # ∂A û
        dA_r = np.column_stack([np.bincount(C[:, a], weights=xr[:, t] * resid, minlength=q)
                                for t, a in enumerate(cols)])  # ∂Aᵀ s
        deta_t = dA_u + A @ fac_obs.solve(dA_r - np.asarray(A.T @ (w_obs[:, None] * dA_u)))
        g_theta = -2.0 * resid @ dA_u + 2.0 * np.sum(w[:, None] * xr * hia[:, cols], axis=0) + deta_t.T @ lev_dw
        return g_beta, g_theta

    def value_and_grad(params):
        params = np.asarray(params, dtype=float)
        st = state(params)
        if nagq > 1:  # AGQ: θ and β through the adaptive nodes (the product rule's for k terms), compiled
            if tmap.full:  # its gradient is in the lower-triangular factor's entries: the caller differences
                return None
            f0, gt, gb = agq_value_and_grad(design, family, tmap.factors(params[:nt])[0], entries, params[nt:],
                                            st.u, nagq, agq_data)
            return f0, np.concatenate([gt, gb])
        g = analytic(params, st)
        if g is None:
            return None
        return -2.0 * st.loglik, np.concatenate([g[1], g[0]])

    return value_and_grad


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


def ridge_solve(M, rhs) -> np.ndarray:
    """Solve the normal equations M x = rhs of an IRLS step, M = XᵀWX.

    Under (quasi-)complete separation the weights of the separated rows underflow to 0
    and M becomes singular; a ridge of 1e-10 × the largest diagonal entry on such a vanishing
    diagonal (below 1e-14 of the largest) keeps the step finite (the coefficient then grows step
    by step, as R's ``glm`` lets it), and a least-squares solve is the last resort.
    ``check_separation`` reports the term. Every other diagonal gets 1e-10 of itself: a ridge of
    the largest on all of them biased the small ones (PQL's working model with Poisson counts near
    10⁹: the intercept's 200 against a slope's 10¹¹, a ridge of 12).
    """
    d = np.abs(np.diag(M))
    big = max(float(np.max(d)), 1e-300) if len(d) else 1.0
    A = M + np.diag(1e-10 * np.where(d > 1e-14 * big, d, big))
    if np.isfinite(A).all() and np.isfinite(rhs).all():  # NumPy's LAPACK calls: no SciPy wrapper
        try:                                              # overhead (≈ 0.1 ms a call: PIRLS, the LMM)
            np.linalg.cholesky(A)  # positive definite, as the Cholesky solve of assume_a="pos" needs
            return np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            pass
    return np.linalg.lstsq(M, rhs, rcond=None)[0]


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


def glm_start(design: Design, family: Family) -> np.ndarray:
    """β of the GLM without random effects (IRLS), the usual starting value."""
    y = design.y
    eta = family.link.link(family.initial_mu(y, design.trials))
    beta = np.zeros(design.X.shape[1])
    for _ in range(50):
        mu, mean, s, w = score_weights(family, eta, design.trials)
        z = eta - design.offset + (y - mean) * s / np.maximum(w, 1e-300)
        WX = design.X * w[:, None]
        new = ridge_solve(design.X.T @ WX, WX.T @ z)
        if np.max(np.abs(new - beta)) < 1e-10:
            beta = new
            break
        beta = new
        eta = design.offset + design.X @ beta
    return beta


def joint_modes_start(design: Design, family: Family, tmap, theta, beta, maxit: int = 50) -> np.ndarray:
    """β maximising ℓ(y | Xβ + ZΛu) − ‖u‖²/2 jointly with u at the given θ: lme4's first stage
    (``nAGQ = 0``), from ``beta`` (the GLM's). Newton steps on (β, u) by block elimination,
    δβ = M⁻¹(g_β − XᵀWA H⁻¹g_u), δu = H⁻¹(g_u − AᵀWX δβ), M = XᵀWX − XᵀWA H⁻¹AᵀWX, with step
    halving. The GLM's β ignores the groups: with Poisson counts near 10⁹ its within-group slope
    was 30 SEs off, a start 5·10⁶ of deviance from the optimum where L-BFGS-B's first steps
    overflowed."""
    A = tmap.ZLambda(theta)
    X, y, trials = design.X, design.y, design.trials
    const = saturated_loglik(design, family)
    u = np.zeros(A.shape[1])

    def objective(b, u):
        mu = family.link.inverse(design.offset + X @ b + A @ u)
        return float(np.sum(family.loglik_relative(y, mu, trials))) + const - 0.5 * float(u @ u)

    obj = objective(beta, u)
    for _ in range(maxit):
        _, mean, sc, w = score_weights(family, design.offset + X @ beta + A @ u, trials)
        r = (y - mean) * sc
        g_b, g_u = X.T @ r, A.T @ r - u
        fac = penalized_system(A, w)
        AtWX = np.asarray(A.T @ (w[:, None] * X))
        HinvAtWX = np.asarray(fac.solve(AtWX))
        M = X.T @ (w[:, None] * X) - AtWX.T @ HinvAtWX
        d_b = ridge_solve(M, g_b - HinvAtWX.T @ g_u)
        d_u = fac.solve(g_u - AtWX @ d_b)
        step = 1.0
        while step > 1e-8:
            new = objective(beta + step * d_b, u + step * d_u)
            if np.isfinite(new) and new >= obj - 1e-12:
                break
            step /= 2
        if step <= 1e-8:
            break
        beta, u, change, obj = beta + step * d_b, u + step * d_u, new - obj, new
        if abs(change) < 1e-10 * (1 + abs(obj)):
            break
    return beta


def beta_scale(design, family, tmap, state, theta) -> np.ndarray:
    """The scale L-BFGS-B moves β on: √(Mⱼⱼ / J), M = XᵀWX − XᵀWA H⁻¹AᵀWX the information on β left
    when the random effects are integrated out (the Laplace Hessian's β block; W the weights at the
    start's modes, A = ZΛ) and J the number of random-effect levels, of the order of the deviance's
    curvature in θ. About 1 for binary data on the orthonormal columns GLMM.fit hands the engine
    (bayesglmm.scaling); for Poisson counts near 10⁹ a within-group slope's is 10⁴ while the
    intercept's stays near 1 (the random intercepts absorb its information): on β unscaled L-BFGS-B
    stopped with θ at its start."""
    w = family.working(state.eta, design.y, design.trials).weight
    X = design.X
    AtWX = np.asarray(tmap.ZLambda(theta).T @ (w[:, None] * X))
    M = np.einsum("ij,i,ij->j", X, w, X) - np.einsum("qj,qj->j", AtWX, np.asarray(state.factor.solve(AtWX)))
    levels = max(1, sum(b.n_levels for b in design.random))
    info = M / levels
    return np.where(np.isfinite(info) & (info > 1e-12), np.sqrt(np.maximum(info, 1e-12)), 1.0)


def _hessian_from_grad(fg, x, lower, nt, h=1e-4):
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
        H = _hessian_from_grad(fg, x, lower, nt)
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


def fit_laplace(design: Design, family: Family, nagq: int = 1, tol: float = 1e-14, maxiter: int = 2000):
    """Fit a GLMM by maximum likelihood: Laplace (``nagq=1``) or adaptive Gauss–Hermite quadrature.

    Returns
    -------
    EngineResult
        ``vcov_beta`` and ``vcov_full`` from the Hessian in (θ, β); ``loglik`` with every
        normalising constant; ``state`` the conditional modes at the estimates.
    """
    devfun, tmap = laplace_deviance(design, family, nagq)
    theta0 = tmap.theta0()
    x0 = np.concatenate([theta0, joint_modes_start(design, family, tmap, theta0, glm_start(design, family))])
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in tmap.lower] + [(None, None)] * design.X.shape[1]
    lower = np.array(list(tmap.lower) + [-np.inf] * design.X.shape[1])
    vg = devfun.value_and_grad
    if vg is not None and vg(x0) is None:
        vg = None
    if vg is None:  # no analytic gradient: central differences, never the optimiser's forward ones
        vg = central_value_and_grad(devfun, lower)
    options = {"ftol": tol, "gtol": 1e-7, "maxiter": maxiter, "maxfun": 20 * maxiter}
    scale = np.ones(len(x0))
    scale[tmap.n_theta:] = beta_scale(design, family, tmap, devfun.state(x0), x0[:tmap.n_theta])
    def fun(z):
        f, g = vg(z / scale)
        return f, g / scale

    res = minimize_with_restart(fun, x0 * scale, bounds, options, jac=True, n_theta=tmap.n_theta)
    res.x = res.x / scale
    n_eval, message, best = res.nfev, f"L-BFGS-B: {res.message}", res
    if not res.success and res.status != 1:  # fall back on a derivative-free search from where L-BFGS-B
        # stopped (not when it used up maxiter: then the fit is reported as not converged)
        res2 = optimize.minimize(devfun, res.x, method="Powell", bounds=bounds,
                                 options={"xtol": 1e-8, "ftol": 1e-12, "maxiter": maxiter, "maxfev": 20 * maxiter})
        n_eval, message = n_eval + res2.nfev, f"{message}; Powell: {res2.message}"
        best = res2 if res2.fun <= res.fun else res
    x = best.x
    if best.success and maxiter > 1:
        # L-BFGS-B stops on a small relative reduction, which in a flat, badly scaled valley
        # (e.g. a quadratic term in age) can leave the gradient far from 0: finish by Newton
        x, H, steps, decrement = newton_polish(vg, x, lower, tmap.n_theta)
        if steps:
            message += f"; {steps} Newton step{'s' * (steps > 1)}"
        message += f"; Newton decrement {decrement:.1e}"
        H = H / 2.0  # Hessian of −log L
    else:
        H, decrement = _hessian_from_grad(vg, x, lower, tmap.n_theta) / 2.0, float("nan")
    cov = safe_inverse(H)
    p0 = tmap.n_theta
    state = devfun.state(x)
    tolerance = decrement_tolerance(design, family, state.eta, nagq)
    if tolerance > DECREMENT_TOL:
        message += f" (the deviance's rounding allows {tolerance:.1e})"
    if nagq > 1 and tolerance > 1e-3:
        message += ("; AGQ sums each node's log-likelihood whole, which loses precision with counts this large: "
                    "method='laplace' sums it relative to the saturated fit")
    if decrement < -tolerance:  # gᵀH⁻¹g < 0 beyond rounding: the Hessian is not positive definite there
        message += "; the Hessian is not positive definite at the estimates"
    return EngineResult(theta=x[:p0], beta=x[p0:], vcov_beta=cov[p0:, p0:], vcov_full=cov, loglik=-0.5 * devfun(x),
                        state=state, tmap=tmap,
                        converged=bool(best.success) and state.converged and not abs(decrement) > tolerance,
                        message=message, n_eval=int(n_eval), decrement=decrement)
