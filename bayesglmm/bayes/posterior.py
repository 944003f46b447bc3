"""NUTS sampling and the :class:`Posterior` with its tidy tables and diagnostics."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm

from ..results import FIXED_COLUMNS, RE_COLUMNS, RESIDUAL, VC_COLUMNS, tidy_frame

__all__ = ["Posterior", "sample_model", "summarize_draws", "SamplingWarning"]

METHOD = "nuts"


class SamplingWarning(UserWarning):
    """Divergences, a large R-hat or a small effective sample size."""


def summarize_draws(draws: np.ndarray, ci: float = 0.95) -> dict:
    """Summaries of draws shaped (chain, draw, *shape), each with shape ``shape``.

    Returns
    -------
    dict
        ``estimate`` (mean), ``std_error`` (SD), ``conf_low``/``conf_high``
        (equal-tailed ``ci`` interval), ``median``, ``r_hat`` (rank-normalised split
        R-hat) and ``ess_bulk``, as computed by ArviZ.
    """
    draws = np.asarray(draws, dtype=float)
    flat = draws.reshape((-1,) + draws.shape[2:])
    alpha = (1.0 - ci) / 2.0
    lo, med, hi = np.quantile(flat, [alpha, 0.5, 1.0 - alpha], axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = np.asarray(az.rhat(draws), dtype=float) if draws.shape[1] >= 4 else np.full(lo.shape, np.nan)
        ess = np.asarray(az.ess(draws, method="bulk"), dtype=float) if draws.shape[1] >= 4 else np.full(lo.shape, np.nan)
    return {
        "estimate": flat.mean(axis=0), "std_error": flat.std(axis=0, ddof=1),
        "conf_low": lo, "conf_high": hi, "median": med, "r_hat": rhat, "ess_bulk": ess,
    }


def _summary_row(stats: dict, index, **labels) -> dict:
    row = dict(labels)
    row.update({k: float(v[index]) for k, v in stats.items()})
    row["method"] = METHOD
    return row


class Posterior:
    """The posterior of a GLMM sampled by NUTS.

    Attributes
    ----------
    idata : xarray.DataTree
        What :func:`pymc.sample` returned (groups ``posterior``, ``sample_stats``, …).
    model : GLMM
        The model that was sampled.
    ci : float
        Default interval probability of the tables (0.95).
    """

    def __init__(self, model, idata, ci: float = 0.95):
        self.model = model
        self.idata = idata
        self.ci = ci

    # -- draws
    def draws(self, name: str) -> np.ndarray:
        """Draws of a variable as an array (chain, draw, *shape)."""
        return np.asarray(self.idata["posterior"][name].values)

    def __repr__(self):
        post = self.idata["posterior"]
        return (f"<Posterior {self.model.formula!r}, family={self.model.family.name}, "
                f"{post.sizes['chain']} chains × {post.sizes['draw']} draws>")

    # -- tidy tables
    def fixed_effects(self, ci: float | None = None) -> pd.DataFrame:
        """Fixed effects: posterior mean, SD and equal-tailed interval, in design-column order."""
        design = self.model.design
        if not design.fixed_names:
            return tidy_frame([], FIXED_COLUMNS)
        stats = summarize_draws(self.draws("beta"), ci or self.ci)
        rows = [_summary_row(stats, j, term=t) for j, t in enumerate(design.fixed_names)]
        return tidy_frame(rows, FIXED_COLUMNS)

    def variance_components(self, ci: float | None = None) -> pd.DataFrame:
        """Random-effect SDs and correlations (and the Gaussian residual SD)."""
        ci = ci or self.ci
        rows = []
        for block in self.model.design.random:
            stats = summarize_draws(self.draws(f"{block.label}_sd"), ci)
            for t, term in enumerate(block.terms):
                rows.append(_summary_row(stats, t, group=block.group, term=term, term2=None, kind="sd"))
            if block.has_correlation:
                stats = summarize_draws(self.draws(f"{block.label}_corr"), ci)
                for i in range(block.n_terms):
                    for j in range(i + 1, block.n_terms):
                        rows.append(_summary_row(stats, (i, j), group=block.group, term=block.terms[i],
                                                 term2=block.terms[j], kind="corr"))
        if self.model.family.has_scale:
            stats = summarize_draws(self.draws("sigma"), ci)
            rows.append(_summary_row(stats, (), group=RESIDUAL, term=RESIDUAL, term2=None, kind="sd"))
        return tidy_frame(rows, VC_COLUMNS)

    def random_effects(self, ci: float | None = None) -> pd.DataFrame:
        """Predicted random effects b (posterior mean, SD, interval) per group, level and term."""
        ci = ci or self.ci
        rows = []
        for block in self.model.design.random:
            stats = summarize_draws(self.draws(block.label), ci)
            for j, level in enumerate(block.levels):
                for t, term in enumerate(block.terms):
                    rows.append(_summary_row(stats, (j, t), group=block.group, level=level, term=term))
        return tidy_frame(rows, RE_COLUMNS)

    def summary(self, ci: float | None = None) -> pd.DataFrame:
        """Fixed effects and variance components in one table (``parameter`` column first)."""
        fe = self.fixed_effects(ci).assign(parameter=lambda d: d["term"])
        vc = self.variance_components(ci)
        vc = vc.assign(parameter=[
            (f"sd({t}|{g})" if k == "sd" else f"corr({t},{t2}|{g})") if g != RESIDUAL else "sigma"
            for g, t, t2, k in zip(vc["group"], vc["term"], vc["term2"], vc["kind"])
        ])
        cols = ["parameter", "estimate", "std_error", "conf_low", "conf_high", "median", "r_hat", "ess_bulk"]
        return pd.concat([fe[cols], vc[cols]], ignore_index=True)

    def diagnostics(self, warn: bool = True, max_r_hat: float = 1.01, min_ess: float = 400.0) -> dict:
        """Sampler health: divergences, the largest R-hat and smallest bulk ESS of every free parameter.

        Parameters
        ----------
        warn : bool
            Emit a :class:`SamplingWarning` when a check fails.
        max_r_hat, min_ess : float
            Thresholds (Vehtari et al. 2021 recommend R-hat ≤ 1.01 and bulk ESS ≥ 100 per chain).

        Returns
        -------
        dict
            ``divergences``, ``max_r_hat``, ``min_ess_bulk``, ``ok`` and the worst parameters.
        """
        post = self.idata["posterior"]
        free = [v.name for v in self.model.pymc_model().free_RVs]
        rmax, rname, emin, ename = -np.inf, None, np.inf, None
        for name in free:
            stats = summarize_draws(post[name].values)
            r, e = np.nanmax(np.atleast_1d(stats["r_hat"])), np.nanmin(np.atleast_1d(stats["ess_bulk"]))
            if r > rmax:
                rmax, rname = float(r), name
            if e < emin:
                emin, ename = float(e), name
        div = int(np.asarray(self.idata["sample_stats"]["diverging"].values).sum())
        ok = div == 0 and rmax <= max_r_hat and emin >= min_ess
        out = {"divergences": div, "max_r_hat": rmax, "worst_r_hat": rname,
               "min_ess_bulk": emin, "worst_ess_bulk": ename, "ok": ok}
        if warn and not ok:
            problems = []
            if div:
                problems.append(f"{div} divergent transitions (try target_accept=0.95 or stronger priors)")
            if rmax > max_r_hat:
                problems.append(f"max R-hat {rmax:.3f} > {max_r_hat} for {rname!r} (chains disagree: sample longer)")
            if emin < min_ess:
                problems.append(f"min bulk ESS {emin:.0f} < {min_ess:.0f} for {ename!r} (sample more draws)")
            warnings.warn("posterior diagnostics: " + "; ".join(problems), SamplingWarning, stacklevel=2)
        return out


def sample_model(model, draws=1000, tune=1000, chains=4, random_seed=None, cores=None,
                 target_accept=0.9, nuts_sampler="pymc", progressbar=True, **kwargs) -> Posterior:
    """Run NUTS on ``model.pymc_model()``; see :meth:`bayesglmm.GLMM.sample`."""
    if nuts_sampler not in ("pymc", "nutpie", "numpyro", "blackjax"):
        raise ValueError(f"nuts_sampler must be 'pymc' or 'nutpie' (or numpyro/blackjax), got {nuts_sampler!r}")
    for name, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(value, (int, np.integer)) or value < (1 if name != "tune" else 0):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    cores = min(chains, 2) if cores is None else cores
    with model.pymc_model():
        if nuts_sampler == "pymc":
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
                              target_accept=target_accept, nuts_sampler="pymc",
                              progressbar=progressbar, compute_convergence_checks=False, **kwargs)
        else:
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
                              nuts_sampler=nuts_sampler, nuts={"target_accept": target_accept},
                              progressbar=progressbar, **kwargs)
    return Posterior(model, idata)
