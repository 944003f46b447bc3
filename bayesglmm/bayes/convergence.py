"""Rank-normalised split R-hat and bulk ESS (Vehtari et al. 2021) of many parameters at once.

The numbers are ArviZ's (``az.rhat(method="rank")``, ``az.ess(method="bulk")``: the same split
chains, ranks, normal scores, FFT autocovariances and Geyer's initial monotone sequence; equal to
1e-10, tested), computed for every element of a draws array together: the ranks, normal scores
and autocovariances by NumPy/SciPy along an axis, Geyer's sequence in one Numba loop. ArviZ
applies its one-dimensional functions element by element in Python, which dominated a second
``sample`` of a model with hundreds of groups (the measurements are in docs/performance.md,
"Measurements behind the design").
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.fft import next_fast_len
from scipy.special import ndtri

__all__ = ["rank_rhat", "bulk_ess", "rhat_and_ess"]


def _elements(draws) -> np.ndarray:
    """(chain, draw, *shape) → (chain, draw, elements) floats."""
    draws = np.asarray(draws, dtype=float)
    return draws.reshape(draws.shape[0], draws.shape[1], -1)


def _split_chains(x: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as two chains (the middle draw of an odd count dropped)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _ranks(rows: np.ndarray) -> np.ndarray:
    """Ranks 1..n along each row, ties averaged (SciPy's ``rankdata(method="average")``): one sort;
    a run of equal values gets the mean of its first and last positions. (A folded array always
    has ties: two draws equally far from an even count's median.)"""
    order = np.argsort(rows, axis=1)
    s = np.take_along_axis(rows, order, axis=1)
    n = rows.shape[1]
    pos = np.broadcast_to(np.arange(n), rows.shape)
    differs = s[:, 1:] != s[:, :-1]
    starts = np.concatenate([np.ones((rows.shape[0], 1), bool), differs], axis=1)
    ends = np.concatenate([differs, np.ones((rows.shape[0], 1), bool)], axis=1)
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, pos, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(rows.shape)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks of each element (Blom's offset 3/8, ties averaged)."""
    rows = np.ascontiguousarray(x.reshape(-1, x.shape[2]).T)  # (elements, draws)
    z = ndtri((_ranks(rows) - 0.375) / (rows.shape[1] + 0.25))
    return z.T.reshape(x.shape)


def _rhat(z: np.ndarray) -> np.ndarray:
    n = z.shape[1]
    between = n * np.var(z.mean(axis=1), axis=0, ddof=1)
    within = np.mean(np.var(z, axis=1, ddof=1), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _invalid(x: np.ndarray, min_chains: int) -> np.ndarray:
    """ArviZ's ``not_valid``: elements with a NaN, or too few chains or draws."""
    bad = np.isnan(x).any(axis=(0, 1))
    return bad | (x.shape[0] < min_chains) | (x.shape[1] < 4)


def _rank_rhat(split: np.ndarray, z: np.ndarray) -> np.ndarray:
    folded = np.abs(split - np.median(split.reshape(-1, split.shape[2]), axis=0))
    return np.maximum(_rhat(z), _rhat(_z_scale(folded)))


def rank_rhat(draws) -> np.ndarray:
    """The rank-normalised split R-hat of each element of ``draws`` ``(chain, draw, *shape)``: the larger
    of the bulk and the folded (tail) R-hat; NaN with a NaN, one chain or fewer than 4 draws."""
    return rhat_and_ess(draws)[0]


@numba.njit(cache=True)
def _geyer_ess(rho, size):
    """ESS from the autocorrelations ``rho`` (lags, elements) of ``size`` draws: Geyer's initial
    positive sequence, then his initial monotone sequence, as ArviZ's ``_ess``."""
    n, E = rho.shape
    out = np.empty(E)
    rho_hat_t = np.empty(n)
    for e in range(E):
        rho_hat_t[:] = 0.0
        even, odd = 1.0, rho[1, e]
        rho_hat_t[0], rho_hat_t[1] = even, odd
        t = 1
        while t < n - 3 and even + odd > 0.0:
            even, odd = rho[t + 1, e], rho[t + 2, e]
            if even + odd >= 0.0:
                rho_hat_t[t + 1], rho_hat_t[t + 2] = even, odd
            t += 2
        max_t = t - 2
        if even > 0.0:
            rho_hat_t[max_t + 1] = even
        t = 1
        while t <= max_t - 2:
            if rho_hat_t[t + 1] + rho_hat_t[t + 2] > rho_hat_t[t - 1] + rho_hat_t[t]:
                rho_hat_t[t + 1] = (rho_hat_t[t - 1] + rho_hat_t[t]) / 2.0
                rho_hat_t[t + 2] = rho_hat_t[t + 1]
            t += 2
        tau = -1.0 + 2.0 * np.sum(rho_hat_t[:max_t + 1]) + np.sum(rho_hat_t[max_t + 1:max_t + 2])
        tau = max(tau, 1.0 / np.log10(size))
        out[e] = np.nan if np.isnan(rho_hat_t).any() else size / tau
    return out


def bulk_ess(draws) -> np.ndarray:
    """The bulk effective sample size of each element of ``draws`` ``(chain, draw, *shape)``: the ESS
    of the normal scores of the split chains' pooled ranks; NaN with a NaN or fewer than 4 draws."""
    return rhat_and_ess(draws)[1]


def rhat_and_ess(draws) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rank_rhat` and :func:`bulk_ess` of ``draws`` together (the split chains' normal scores
    are the same in both), each shaped as an element of ``draws``."""
    draws = np.asarray(draws, dtype=float)
    x = _elements(draws)
    rhat, ess = np.full(x.shape[2], np.nan), np.full(x.shape[2], np.nan)
    ok = ~_invalid(x, 1)
    if ok.any():
        split = _split_chains(x[:, :, ok])
        z = _z_scale(split)
        if x.shape[0] >= 2:
            rhat[ok] = _rank_rhat(split, z)
        ess[ok] = _ess(z)
    return rhat.reshape(draws.shape[2:]), ess.reshape(draws.shape[2:])


def _ess(z: np.ndarray) -> np.ndarray:
    """Bulk ESS of each element from the split chains' normal scores ``z`` (chains, draws, elements)."""
    C, n, E = z.shape
    centred = z - z.mean(axis=1, keepdims=True)
    m = next_fast_len(2 * n)
    spectrum = np.fft.rfft(centred, n=m, axis=1)
    acov = np.fft.irfft(spectrum * np.conjugate(spectrum), n=m, axis=1)[:, :n] / n  # (C, n, E)
    mean_var = acov[:, 0].mean(axis=0) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if C > 1:
        var_plus = var_plus + np.var(z.mean(axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus
    ess = _geyer_ess(np.ascontiguousarray(rho), float(C * n))
    constant = (z.max(axis=(0, 1)) - z.min(axis=(0, 1))) < np.finfo(float).resolution
    return np.where(constant, float(C * n), ess)
