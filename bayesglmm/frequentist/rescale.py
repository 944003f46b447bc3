"""An engine's estimates on the internal design, mapped to the user's parametrization.

The engines fit the internal design of :mod:`bayesglmm.scaling`: X̃ = X A, each random block's
columns Xr̃ = Xr T, a Gaussian identity-link response ỹ = (y − c)/s. Its estimates map back as

    β = s A β̃ + c e,      b = s T b̃,      Σ = s² T Σ̃ Tᵀ,      σ = s σ̃,

and a block's factor L (Σ = LLᵀ, lower triangular, lme4's θ) is the lower-triangular factor of
s T L̃: with (s T L̃)ᵀ = Q R, L = Rᵀ and s T L̃ = L Qᵀ, so the spherical modes rotate, u = Qᵀ ũ, and
so does the curvature ΛᵀZᵀWZΛ + I (:class:`RotatedFactor`). Where T is diagonal (every block but a
centred correlated one) θ maps entry by entry and Q = I.

The inverse direction is linear once the internal factor may be any square matrix (the likelihood
depends on L only through LLᵀ; :class:`~bayesglmm.frequentist.laplace.ThetaMap` with ``full``):
L̃ = T⁻¹ L / s. :func:`internal_theta_map` is that matrix, which ``model.deviance`` and the profiles
use to work in the user's coordinates with the engines' functions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import linalg

from .records import EngineResult
from .theta import lower_factor

__all__ = ["on_user_scale", "internal_estimates", "internal_modes", "user_factors", "user_theta", "internal_theta_map", "RotatedFactor",
           "centred_blocks"]


def centred_blocks(scaling) -> tuple[int, ...]:
    """The blocks whose internal basis is centred (their T is not diagonal)."""
    return tuple(k for k in range(len(scaling.transforms)) if scaling.centred(k))


def user_factors(theta, tmap, scaling) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per block, (L, Q) with s T L̃ = L Qᵀ (see the module docstring), from the internal θ̃."""
    return [lower_factor(scaling.effect_map(k) @ L) for k, L in enumerate(tmap.factors(theta))]


def user_theta(theta, tmap, scaling) -> np.ndarray:
    """The user's θ (the packed lower-triangular factors of :func:`user_factors`) from θ̃."""
    out = [L[rows, cols] for (L, _), (rows, cols) in zip(user_factors(theta, tmap, scaling), tmap.entries)]
    return np.concatenate(out) if out else np.zeros(0)


def theta_jacobian(theta, tmap, scaling, h: float = 1e-7) -> np.ndarray:
    """∂θ/∂θ̃ at θ̃: exact where T is diagonal (entry (r, c) times s/z_r), by central differences of
    :func:`user_theta` in a centred block (smooth away from a singular factor)."""
    n = len(theta)
    J = np.zeros((n, n))
    pos = 0
    for k, (rows, cols) in enumerate(tmap.entries):
        size = len(rows)
        sl = slice(pos, pos + size)
        if not scaling.centred(k):
            J[sl, sl] = np.diag(np.diag(scaling.effect_map(k))[rows])
        else:
            for i in range(pos, pos + size):
                step = h * max(1.0, abs(theta[i]))
                up, down = theta.copy(), theta.copy()
                up[i] += step
                down[i] -= step
                J[sl, i] = (user_theta(up, tmap, scaling)[sl] - user_theta(down, tmap, scaling)[sl]) / (2 * step)
        pos += size
    return J


def internal_theta_map(user_tmap, internal_tmap, scaling, relative: bool = False) -> np.ndarray:
    """The matrix P with θ̃ = P θ: each block's internal factor L̃ = T⁻¹ L / s (``relative``: the
    LMMs' θ relative to σ, where s cancels: L̃ = T⁻¹ L), its entries in ``internal_tmap``'s
    layout (a centred block's internal factor is full: ``ThetaMap(..., full=centred_blocks(...))``)."""
    n_user, n_int = user_tmap.n_theta, internal_tmap.n_theta
    P = np.zeros((n_int, n_user))
    for i in range(n_user):
        e = np.zeros(n_user)
        e[i] = 1.0
        factors = []
        for k, L in enumerate(user_tmap.factors(e)):
            T = scaling.transforms[k] if relative else scaling.effect_map(k)
            factors.append(np.linalg.solve(T, L))
        P[:, i] = np.concatenate([L[rows, cols] for L, (rows, cols) in zip(factors, internal_tmap.entries)])
    return P


class RotatedFactor:
    """The curvature H = ΛᵀZᵀWZΛ + I in the user's coordinates: H = Rᵀ H̃ R with R the block
    diagonal of each level's Q (ũ = R u; :func:`on_user_scale`), answering what
    :class:`~bayesglmm.frequentist.fit.MLFit` asks of a factorisation: :meth:`solve`,
    :meth:`inverse_blocks` (each level's k × k block of H⁻¹ is Qᵀ (H̃⁻¹)ⱼⱼ Q) and ``logdet``.

    Parameters
    ----------
    factor
        The internal factorisation (of H̃).
    rotations : list of ndarray
        Q of each random block (the identity where the block is not centred).
    sizes : list of (int, int)
        (n_levels, n_terms) of each block.
    """

    def __init__(self, factor, rotations, sizes):
        self.factor, self.rotations, self.sizes = factor, list(rotations), list(sizes)
        self.kind, self.logdet = "rotated", factor.logdet

    def _rotate(self, v, transpose: bool):
        v = np.asarray(v, dtype=float)
        out, pos = np.empty_like(v), 0
        for Q, (g, k) in zip(self.rotations, self.sizes):
            part = v[pos:pos + g * k].reshape((g, k) + v.shape[1:])
            out[pos:pos + g * k] = np.einsum("ab,gb...->ga..." if not transpose else "ba,gb...->ga...", Q,
                                             part).reshape((g * k,) + v.shape[1:])
            pos += g * k
        return out

    def solve(self, rhs):
        """H⁻¹ rhs = Rᵀ H̃⁻¹ R rhs."""
        return self._rotate(self.factor.solve(self._rotate(rhs, False)), True)

    def inverse_blocks(self, sizes) -> list[np.ndarray]:
        blocks = self.factor.inverse_blocks(sizes)
        return [np.einsum("ab,gac,cd->gbd", Q, B, Q) for Q, B in zip(self.rotations, blocks)]


def on_user_scale(raw: EngineResult, scaling, reml: bool = False) -> EngineResult:
    """An engine's result on the internal design mapped to the user's parametrization (the
    module docstring): θ, β and their covariances (by the Jacobian), σ, the log-likelihood
    (:meth:`~bayesglmm.scaling.DesignScaling.loglik_shift`), the modes u and the curvature's
    factor rotated where a block is centred. ``internal`` keeps ``raw``."""
    tmap = raw.tmap
    factors = user_factors(raw.theta, tmap, scaling)
    theta = user_theta(raw.theta, tmap, scaling)
    jb = scaling.beta_jacobian
    vcov_full = None
    if raw.vcov_full is not None:
        extra = np.eye(raw.vcov_full.shape[0] - len(raw.theta) - len(raw.beta))  # log φ: scale-free
        J = linalg.block_diag(theta_jacobian(raw.theta, tmap, scaling), jb, extra)
        vcov_full = J @ raw.vcov_full @ J.T
    state = replace(raw.state, eta=scaling.y_shift + scaling.y_scale * raw.state.eta)
    centred = centred_blocks(scaling)
    if centred:
        u, pos, rotations = raw.state.u.copy(), 0, []
        for k, (block, (_, Q)) in enumerate(zip(tmap.blocks, factors)):
            size = block.n_levels * block.n_terms
            u[pos:pos + size] = (raw.state.u[pos:pos + size].reshape(block.n_levels, block.n_terms) @ Q).ravel()
            rotations.append(Q)
            pos += size
        sizes = [(b.n_levels, b.n_terms) for b in tmap.blocks]
        state = replace(state, u=u, factor=RotatedFactor(raw.state.factor, rotations, sizes))
    return replace(raw, theta=theta, beta=scaling.beta(raw.beta), vcov_beta=jb @ raw.vcov_beta @ jb.T,
                   vcov_full=vcov_full, loglik=raw.loglik + scaling.loglik_shift(reml), state=state,
                   sigma=None if raw.sigma is None else raw.sigma * scaling.y_scale, internal=raw)


def internal_modes(u, theta, tmap, scaling) -> np.ndarray:
    """The internal spherical modes ũ from the user's u, the inverse of :func:`on_user_scale`'s rotation
    (u = ũ Q level by level in a centred block, Q orthogonal: ũ = u Qᵀ); ``theta`` is the internal θ̃.
    For a fit read from a file, which keeps the user's u only."""
    u = np.asarray(u, dtype=float).copy()
    pos = 0
    for k, (block, (_, Q)) in enumerate(zip(tmap.blocks, user_factors(theta, tmap, scaling))):
        size = block.n_levels * block.n_terms
        if scaling.centred(k):
            u[pos:pos + size] = (u[pos:pos + size].reshape(block.n_levels, block.n_terms) @ Q.T).ravel()
        pos += size
    return u


def internal_estimates(theta, beta, sigma, scaling) -> EngineResult:
    """The internal parametrization's estimates (θ̃, β̃, σ̃) from the user's, the inverse of
    :func:`on_user_scale` for the estimates alone (what profiles start from): L̃ is the
    lower-triangular factor of T⁻¹ L / s, β̃ = (sA)⁻¹(β − c e), σ̃ = σ / s. The other fields are
    empty: for results that kept only the user's estimates (a legacy file)."""
    from .theta import ThetaMap

    tmap = ThetaMap(scaling.design)  # θ's layout is the same in both: the same blocks
    factors = [lower_factor(np.linalg.solve(scaling.effect_map(k), L))[0] for k, L in enumerate(tmap.factors(theta))]
    theta_int = np.concatenate([L[rows, cols] for L, (rows, cols) in zip(factors, tmap.entries)]) if factors \
        else np.zeros(0)
    return EngineResult(theta=theta_int, beta=scaling.beta_internal(beta), vcov_beta=None, loglik=np.nan, state=None,
                        tmap=tmap, converged=True, message="", n_eval=0,
                        sigma=None if sigma is None else float(sigma) / scaling.y_scale)
