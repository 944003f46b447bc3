"""Population-averaged (marginal) coefficients implied by a fitted GLMM.

A GLMM's β is subject-specific: it describes the mean of one cluster, given its random
effects. GEE estimates the population-averaged coefficients of the marginal mean
E[y] = E_b[g⁻¹(xβ + zb)]. To put the two on one scale, the marginal mean of every
observation is integrated over the fitted random-effect distribution and the marginal
coefficients are the least-squares fit of its link to X, as GLMMadaptive's
``marginal_coefs`` does (Hedeker et al. 2018):

    μᴹᵢ = ∫ g⁻¹(ηᵢ + √vᵢ x) φ(x) dx,      vᵢ = Σ_blocks zᵢ Σ zᵢᵀ,
    βᴹ = (XᵀX)⁻¹ Xᵀ (g(μᴹ) − offset).

The random part of ηᵢ is a sum of independent normal terms, so each observation needs
only a one-dimensional Gauss–Hermite rule (NumPy's ``hermgauss``). For an identity link
βᴹ = β; for a log link only the intercept moves (by v/2 when v is constant).

Uncertainty: for a posterior, βᴹ is computed for each draw (a posterior of βᴹ); for an ML
fit, (θ, β) are drawn from their asymptotic normal distribution (the inverse Hessian) and
the SD of βᴹ over the draws is its standard error — GLMMadaptive's method.

References
----------
Hedeker, D., du Toit, S. H. C., Demirtas, H. and Gibbons, R. D. (2018). A note on
marginalization of regression parameters from mixed models of binary outcomes.
Biometrics 74, 354–361.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .scaling import column_frame

__all__ = ["marginal_coefficients", "marginal_coefficient_draws"]


def _random_variance(design, covariances) -> np.ndarray:
    v = np.zeros(design.nobs)
    for block, S in zip(design.random, covariances):
        v = v + np.einsum("ij,jk,ik->i", block.Xr, np.asarray(S), block.Xr)
    return v


def marginal_coefficients(design, family, beta, covariances, nodes: int = 40) -> np.ndarray:
    """βᴹ for one (β, Σ); see the module docstring.

    Parameters
    ----------
    design : Design
    family : Family
    beta : array, shape (p,)
    covariances : sequence of arrays
        Σ of each random block (``MLFit.covariances()``).
    nodes : int
        Gauss–Hermite nodes.
    """
    x, w = np.polynomial.hermite.hermgauss(nodes)
    eta = design.offset + design.X @ np.asarray(beta, dtype=float)
    sd = np.sqrt(np.maximum(_random_variance(design, covariances), 0.0))
    mu = (family.link.inverse(eta[:, None] + np.sqrt(2.0) * sd[:, None] * x[None, :]) @ w) / np.sqrt(np.pi)
    if family.counts_successes:  # keep g(μᴹ) finite when a fitted β is huge (separation)
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
    elif not family.has_scale:  # a Poisson mean
        mu = np.maximum(mu, 1e-300)
    target = family.link.link(mu) - design.offset
    A = column_frame(design.X).A  # least squares on X's orthonormal frame: lstsq on X with a covariate
    return A @ linalg.lstsq(design.X @ A, target)[0]  # near 10⁸ returned 0 for its coefficient


def marginal_coefficient_draws(design, family, betas, covariance_draws, nodes: int = 40) -> np.ndarray:
    """βᴹ for each of many (β, Σ) pairs, shape (n_draws, p)."""
    return np.asarray([marginal_coefficients(design, family, b, S, nodes) for b, S in zip(betas, covariance_draws)])
