"""The records the frequentist engines hand on: :class:`EngineResult` (what an engine returns to
:class:`~bayesglmm.frequentist.fit.MLFit`) and :class:`LaplaceState` (the conditional modes and
curvature at one (θ, β))."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: records are made by the modules that import these
    from .factor import Factor
    from .theta import ThetaMap

__all__ = ["EngineResult", "LaplaceState"]


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
    dispersion : float or None
        A dispersion family's θ or shape (Laplace/AGQ), the last of ``vcov_full``'s parameters as
        its logarithm.
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
    dispersion: float | None = None


@dataclass
class LaplaceState:
    """PIRLS result at one (θ, β): conditional modes and the pieces of the deviance."""

    u: np.ndarray
    eta: np.ndarray
    loglik_cond: float
    logdet: float
    factor: "Factor"  # of ΛᵀZᵀWZΛ + I
    converged: bool

    @property
    def loglik(self) -> float:
        return self.loglik_cond - 0.5 * float(self.u @ self.u) - 0.5 * self.logdet
