"""Prior sensitivity: power-scaling (no refit) and refits under other priors.

``method="power"``: power-scaling sensitivity (Kallioinen et al. 2023; R's priorsense) through
ArviZ's ``psense_summary`` on the posterior. Only the top-level priors are scaled — the fixed
effects, the SDs, the correlations and σ — not the standard-normal ``z`` of the non-centred
random effects: scaling those reads a "prior-data conflict" on an SD that is not there (the
priorsense author's advice; brms keeps ``z`` out of its ``lprior`` too).

``method="refit"``: the model sampled again under each prior set, with the posterior median,
interval and the shift of the median in units of the reference posterior's SD. Without
``priors`` a classic set on every random-effect SD is used: HalfNormal at ½, 1 and 2 times the
default scale, HalfCauchy, Exponential, Uniform(0, U), and InverseGamma(ε, ε) on the variance,
which the table flags as the near-improper choice Natarajan & McCulloch (1995) and Gelman (2006)
warn about.

References
----------
Kallioinen, N., Paananen, T., Bürkner, P.-C. and Vehtari, A. (2023). Detecting and diagnosing
prior and likelihood sensitivity with power-scaling. Statistics and Computing 34, 57.
Gelman, A. (2006). Prior distributions for variance parameters in hierarchical models.
Bayesian Analysis 1, 515–534.
Natarajan, R. and McCulloch, C. E. (1995). A note on the existence of the posterior distribution
for a class of mixed models for binomial responses. Biometrika 82, 639–643.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .report import StudyDisplay
from .results import Flag, check_ci

__all__ = ["prior_sensitivity", "PriorSensitivity", "classic_sd_priors"]

NEAR_IMPROPER = "InverseGamma(0.001, 0.001) on the variance"


def classic_sd_priors(model) -> dict:
    """The classic prior sets for every random-effect SD, ``{label: {key: prior}}`` (key ``"sd"``)."""
    from .priors import Exponential, HalfCauchy, HalfNormal, InverseGamma, Uniform

    table = model.priors.table()
    sd_rows = table[table["parameter"].astype(str).str.startswith("sd ")]
    scales = sd_rows["prior"].astype(str).str.extract(r"HalfNormal\(sigma=([0-9.eE+-]+)\)")[0].astype(float)
    scale = float(scales.median()) if scales.notna().any() else 2.5  # the default SD prior's scale
    return {
        f"HalfNormal({scale / 2:g})": {"sd": HalfNormal(scale / 2)},
        f"HalfNormal({scale:g})": {"sd": HalfNormal(scale)},
        f"HalfNormal({2 * scale:g})": {"sd": HalfNormal(2 * scale)},
        "HalfCauchy(1)": {"sd": HalfCauchy(1.0)},
        "Exponential(1)": {"sd": Exponential(1.0)},
        f"Uniform(0, {10 * scale:g})": {"sd": Uniform(0.0, 10 * scale)},
        NEAR_IMPROPER: {"sd": InverseGamma(0.001, 0.001)},
    }


def _top_level(post) -> list[str]:
    pm_model = post.model.pymc_model()
    return [v.name for v in pm_model.free_RVs if not v.name.endswith("_z")]


class PriorSensitivity(StudyDisplay):
    """The result of :func:`prior_sensitivity`: ``table()``, ``plot()``, the shared display, ``flags``.

    Attributes
    ----------
    method : {"power", "refit"}
    model : GLMM
    posteriors : dict
        Label → Posterior (``"refit"``: one per prior set, the first the reference).
    seconds : dict
        Label → wall time of each refit (``"refit"``).
    compilations : dict
        Label → Numba compilations during each refit (``"refit"``): the prior sets share one
        graph, so after the first refit this is 0 (see :func:`bayesglmm.bayes.count_compilations`).
    """

    def __init__(self, model, method, frame, flags, posteriors, seconds, idata=None, compilations=None):
        self.model, self.method, self._frame, self.flags = model, method, frame, flags
        self.posteriors, self.seconds, self._idata = posteriors, seconds, idata
        self.compilations = dict(compilations or {})

    def table(self) -> pd.DataFrame:
        """``"power"``: per parameter, the prior and likelihood sensitivities (CJS distance
        derivatives) and ArviZ's diagnosis. ``"refit"``: per parameter and prior set, the posterior
        median, interval, and ``shift`` = (median − reference median) / reference posterior SD;
        ``near_improper`` marks InverseGamma(ε, ε); ``seconds`` and ``compilations`` of each refit."""
        return self._frame.copy()

    def summary(self) -> pd.DataFrame:
        """The same as :meth:`table`."""
        return self.table()

    def _title(self):
        how = ("power-scaling of the top-level priors (fixed effects, SDs, correlations, sigma, dispersion)"
               if self.method == "power" else f"refits under {len(self.posteriors)} prior sets")
        return [f"Prior sensitivity of {self.model.formula}: {how}"]

    def __repr__(self):
        return f"<PriorSensitivity {self.method}: {self.model.formula!r}>"

    def plot(self):
        """``"power"``: arviz-plots' ``plot_psense_dist`` (the posterior under prior scalings);
        ``"refit"``: the interval of every fixed effect and SD under each prior set.

        Returns
        -------
        matplotlib.figure.Figure
        """
        if self.method == "power":
            import arviz_plots as azp

            pc = azp.plot_psense_dist(self._idata, var_names=_top_level(self.posteriors["posterior"]),
                                      backend="matplotlib")
            return pc.viz["figure"].item()
        from .plots import forest

        long = self._frame.rename(columns={"prior": "method", "median": "estimate"})
        return forest(long, list(self.posteriors), kinds=("fixed", "sd"), title=self.model.formula)


def _power(post, threshold=0.05) -> PriorSensitivity:
    import arviz as az
    import pymc as pm
    import xarray as xr

    pm_model = post.model.pymc_model()
    top = _top_level(post)
    lp = pm.stats.compute_log_prior(post.idata, var_names=top, model=pm_model, extend_inferencedata=False,
                                    progressbar=False)
    ll = pm.stats.compute_log_likelihood(post.idata, model=pm_model, extend_inferencedata=False, progressbar=False)
    data = post.idata.copy()
    data["log_prior"] = xr.DataTree(lp)
    data["log_likelihood"] = xr.DataTree(ll)
    out = az.psense_summary(data, var_names=top, threshold=threshold)
    frame = out.reset_index().rename(columns={"index": "parameter"})
    frame = frame.rename(columns={frame.columns[0]: "parameter"})
    flags = [Flag("prior_sensitivity", f"{p}: {d}") for p, d in zip(frame["parameter"], frame["diagnosis"])
             if "conflict" in str(d) or "strong prior" in str(d)]
    return PriorSensitivity(post.model, "power", frame, flags, {"posterior": post}, {}, idata=data)


def _with_set(model, prior_set: dict) -> dict:
    """The model's own prior overrides, with ``prior_set`` on top: a general key of the set
    (``"sd"``, ``"sd|G"``, ``"corr"``, ``"fixed"``) replaces the model's more specific ones it covers."""
    from .priors import default_priors

    defaults = default_priors(model.design, model.family)
    sd_keys = {k for k in defaults if "|" in k and not k.startswith("corr|")}

    def covered(key, general):
        if general == "sd":
            return key in sd_keys or key.startswith("sd|")
        if general.startswith("sd|"):
            return key in sd_keys and key.endswith("|" + general[3:])
        if general == "corr":
            return key.startswith("corr|")
        if general == "fixed":
            return key in model.design.fixed_names and key not in ("(Intercept)", "Intercept")
        return False

    own = {k: v for k, v in model.prior_overrides.items() if not any(covered(k, g) for g in prior_set)}
    return {**own, **prior_set}


def _refit(model, priors, reference, draws, tune, chains, random_seed, ci, progressbar,
           nuts_sampler="nutpie") -> PriorSensitivity:
    from .bayes.compilation import count_compilations
    from .bayes.posterior import sample_model

    sets = {"reference (default priors)": None} if reference is None else {}
    sets.update(classic_sd_priors(model) if priors is None else priors)
    posteriors, seconds, compiles = {}, {}, {}
    if reference is not None:
        posteriors["reference"] = reference
    for label, prior_set in sets.items():
        t0 = time.perf_counter()
        # every prior set builds the same graph (priors are data and the graph holds every prior
        # family), so only the first refit compiles
        with count_compilations() as count:
            target = model if prior_set is None else model.update(priors=_with_set(model, prior_set))
            posteriors[label] = sample_model(target, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                                             progressbar=progressbar, families="all", nuts_sampler=nuts_sampler)
        seconds[label], compiles[label] = time.perf_counter() - t0, count.n
    ref_label = next(iter(posteriors))
    ref = posteriors[ref_label].summary(ci).set_index("parameter")
    rows, flags = [], []
    for label, post in posteriors.items():
        s = post.summary(ci)
        for r in s.itertuples():
            rows.append({"parameter": r.parameter, "kind": r.kind, "prior": label, "median": r.median,
                         "conf_low": r.conf_low, "conf_high": r.conf_high, "sd": r.std_error,
                         "shift": (r.median - ref.loc[r.parameter, "median"]) / ref.loc[r.parameter, "std_error"],
                         "near_improper": label == NEAR_IMPROPER, "r_hat": r.r_hat,
                         "seconds": seconds.get(label, np.nan), "compilations": compiles.get(label, 0)})
        bad = post.flags
        flags += [Flag(f.kind, f"{label}: {f.message}") for f in bad]
    frame = pd.DataFrame(rows)
    big = frame[(frame["prior"] != ref_label) & (frame["shift"].abs() > 0.5)]
    flags += [Flag("prior_sensitivity", f"{r.parameter} moves {r.shift:+.2f} reference SDs under {r.prior}")
              for r in big.itertuples()]
    return PriorSensitivity(model, "refit", frame, flags, posteriors, seconds, compilations=compiles)


def prior_sensitivity(model_or_posterior, priors: dict | None = None, method: str = "power", *,
                      draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed=None, ci: float = 0.95,
                      threshold: float = 0.05, progressbar: bool = False,
                      nuts_sampler: str = "nutpie") -> PriorSensitivity:
    """How much the posterior depends on the priors.

    Parameters
    ----------
    model_or_posterior : GLMM or Posterior
        A posterior is used as it is (``"power"``) or as the reference (``"refit"``); a model is
        sampled first.
    priors : dict, optional
        ``"refit"``: ``{label: {key: prior}}``, keys as in ``GLMM(priors=...)``; default the
        classic SD priors (:func:`classic_sd_priors`).
    method : {"power", "refit"}
    draws, tune, chains, random_seed, progressbar
        For the sampling (see :meth:`GLMM.sample`).
    ci : float
        Interval probability (``"refit"``).
    threshold : float
        ArviZ's sensitivity threshold (``"power"``; 0.05 as priorsense).
    nuts_sampler : {"pymc", "nutpie"}
        The NUTS of the sampling (see :meth:`GLMM.sample`); with ``"nutpie"`` every refit after the
        first reuses the first one's compiled model and pays only its sampling.

    Returns
    -------
    PriorSensitivity

    Notes
    -----
    The priors are data in the PyMC graph and the refits' graphs hold every prior family
    (:mod:`bayesglmm.bayes.prior_graph`), so every prior set of a sweep builds the same graph and
    only the first refit compiles; each later refit pays the
    graph's rewriting (under a second for a one-factor model) and its sampling — with
    ``nuts_sampler="nutpie"`` only its sampling. The table's ``compilations`` column counts it.
    """
    from .bayes.posterior import Posterior

    if method not in ("power", "refit"):
        raise ValueError(f"method must be 'power' or 'refit', got {method!r}")
    check_ci(ci)
    if priors is not None and (method == "power" or not isinstance(priors, dict)
                               or not all(isinstance(v, dict) for v in priors.values())):
        raise ValueError("priors must be {label: {key: prior}} and applies to method='refit'")
    post = model_or_posterior if isinstance(model_or_posterior, Posterior) else None
    model = post.model if post is not None else model_or_posterior
    if method == "power":
        if post is None:
            post = model.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                                progressbar=progressbar, diagnose=False, nuts_sampler=nuts_sampler)
        return _power(post, threshold)
    return _refit(model, priors, post, draws, tune, chains, random_seed, ci, progressbar, nuts_sampler)
