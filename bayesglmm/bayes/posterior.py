"""NUTS sampling and the :class:`Posterior` with its tidy tables and diagnostics."""

from __future__ import annotations

import warnings
from functools import cached_property

from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm

from ..design import INTERCEPT as INTERCEPT_TERM
from ..report import ResultDisplay, posterior_sd_table, posterior_table
from ..results import (DEFAULT_CI, FIXED_COLUMNS, RE_COLUMNS, RESIDUAL, VC_COLUMNS, CentringWarning, Flag,
                       NotApplicableError, SamplingWarning, check_ci, summary_table, tidy_frame)
from .convergence import rhat_and_ess
from .nuts import quiet_pymc_log

__all__ = ["Posterior", "sample_model", "summarize_draws", "SamplingWarning"]

#: the package's own files: a diagnostics warning points at the user's line that sampled or asked for it,
#: whether ``diagnostics`` was called by the user or by ``GLMM.sample`` (Python 3.12's skip_file_prefixes)
_PACKAGE_DIRS = (str(Path(__file__).resolve().parents[1]),)

METHOD = "nuts"
#: the share of draws at the maximum tree depth above which :meth:`Posterior.diagnostics` warns
MAX_TREEDEPTH_SHARE = 0.01






def summarize_draws(draws: np.ndarray, ci: float = 0.95) -> dict:
    """Summaries of draws shaped (chain, draw, *shape), each with shape ``shape``.

    Returns
    -------
    dict
        ``estimate`` (mean), ``std_error`` (SD), ``conf_low``/``conf_high``
        (equal-tailed ``ci`` interval), ``median``, ``r_hat`` (rank-normalised split
        R-hat) and ``ess_bulk``: ArviZ's numbers, all elements at once
        (:func:`bayesglmm.bayes.convergence.rhat_and_ess`).
    """
    draws = np.asarray(draws, dtype=float)
    flat = draws.reshape((-1,) + draws.shape[2:])
    alpha = (1.0 - ci) / 2.0
    lo, med, hi = np.quantile(flat, [alpha, 0.5, 1.0 - alpha], axis=0)
    rhat, ess = rhat_and_ess(draws)
    return {
        "estimate": flat.mean(axis=0), "std_error": flat.std(axis=0, ddof=1),
        "conf_low": lo, "conf_high": hi, "median": med, "r_hat": rhat, "ess_bulk": ess,
    }


def _refuse_profile(profile) -> None:
    if profile:
        raise ValueError("a posterior has no profile-likelihood intervals: its intervals are the posterior's own "
                         "equal-tailed ci intervals, with nothing to profile; drop profile=True")


def _summary_row(stats: dict, index, **labels) -> dict:
    row = dict(labels)
    row.update({k: float(v[index]) for k, v in stats.items()})
    row["method"] = METHOD
    return row


class Posterior(ResultDisplay):
    """The posterior of a GLMM sampled by NUTS.

    Attributes
    ----------
    idata : xarray.DataTree
        What :func:`pymc.sample` returned (groups ``posterior``, ``sample_stats``, …).
    model : GLMM
        The model that was sampled.
    ci : float
        The interval probability of the tables when theirs is None (0.95,
        :data:`~bayesglmm.results.DEFAULT_CI`).
    """

    #: the method label of every row of its tables
    method = METHOD
    #: a posterior's intervals are its own (equal-tailed ``ci``): ``profile=True`` raises ``ValueError``
    can_profile = False

    def __init__(self, model, idata, ci: float = DEFAULT_CI):
        self.model = model
        self.idata = idata
        self.ci = check_ci(ci)

    # -- draws
    def draws(self, name: str) -> np.ndarray:
        """Draws of a variable as an array of shape ``(chain, draw, *shape)``."""
        return np.asarray(self.idata["posterior"][name].values)

    def __repr__(self):
        post = self.idata["posterior"]
        return (f"<Posterior {self.model.formula!r}, family={self.model.family.name}, "
                f"{post.sizes['chain']} chains × {post.sizes['draw']} draws>")

    # -- the printed summary (bayesglmm.report.ResultDisplay's hooks)
    _random_caption = " (posterior mean of the SD, SD, 95% interval):"
    _fixed_caption = " (posterior mean, SD, 95% interval):"

    def _summary_title(self) -> str:
        return "Bayesian generalized linear mixed model: posterior sampled by NUTS"

    def _summary_random(self, vc: pd.DataFrame) -> pd.DataFrame | None:
        return posterior_sd_table(vc)

    def _summary_fixed(self, fe: pd.DataFrame) -> pd.DataFrame:
        return posterior_table(fe)

    def _summary_status(self) -> list[str]:
        d = self.diagnostics(warn=False)
        post = self.idata["posterior"]
        sampler = post.attrs.get("bayesglmm_nuts_sampler")
        how = {"exact": "; random effects integrated out exactly, then drawn",
               "quadrature": f"; random effects integrated out by AGQ ({post.attrs.get('marginalized_nagq')} nodes), "
                             "then drawn"}.get(post.attrs.get("marginalized"), "")
        return [f"Sampling: {post.sizes['chain']} chains x {post.sizes['draw']} draws"
                + (f" ({sampler}'s NUTS{how})" if sampler else how.replace("; ", " (", 1) + (")" if how else ""))
                + f"; {d['divergences']} divergences, max R-hat {d['max_r_hat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}"]

    # -- tidy tables
    def fixed_effects(self, ci: float | None = None) -> pd.DataFrame:
        """Fixed effects: posterior mean, SD and equal-tailed interval, in design-column order."""
        check_ci(ci, allow_none=True)
        design = self.model.design
        if not design.fixed_names:
            return tidy_frame([], FIXED_COLUMNS)
        stats = summarize_draws(self.draws("beta"), ci or self.ci)
        rows = [_summary_row(stats, j, term=t) for j, t in enumerate(design.fixed_names)]
        return tidy_frame(rows, FIXED_COLUMNS)

    def variance_components(self, ci: float | None = None, profile: bool = False) -> pd.DataFrame:
        """Random-effect SDs and correlations (and the Gaussian residual SD).

        ``profile=True`` raises ``ValueError``: a posterior's intervals are already its own
        (equal-tailed ``ci``), there is no likelihood to profile (:attr:`can_profile`)."""
        check_ci(ci, allow_none=True)
        _refuse_profile(profile)
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
        family = self.model.family
        if family.has_scale:
            stats = summarize_draws(self.draws("sigma"), ci)
            rows.append(_summary_row(stats, (), group=RESIDUAL, term=RESIDUAL, term2=None, kind="sd"))
        if family.has_dispersion:  # θ or the shape, glmmTMB's sigma() (1/√shape for a Gamma)
            stats = summarize_draws(self.draws(family.dispersion_name), ci)
            rows.append(_summary_row(stats, (), group=RESIDUAL, term=family.dispersion_name, term2=None,
                                     kind="dispersion"))
        return tidy_frame(rows, VC_COLUMNS)

    def log_likelihood(self, by: str = "observation", nagq: int | None = None):
        """The pointwise log-likelihood at every draw, an :class:`xarray.DataArray`.

        Parameters
        ----------
        by : str
            ``"observation"``: log p(yᵢ | β, b, φ), dims (chain, draw, obs). A grouping factor's name: each
            level's **marginal** log-likelihood, its random effects integrated out (exactly for a Gaussian
            model, else by adaptive Gauss–Hermite quadrature with its nodes chosen until settled), dims
            (chain, draw, factor) with the levels as coordinates; in a model with several factors the other
            factors' effects are conditional on their draws. See :mod:`bayesglmm.bayes.loo`.
        nagq : int, optional
            Nodes per dimension of the quadrature (by a factor); default chosen (``attrs["nagq"]``).

        Works on posteriors sampled with ``marginalize=True`` too (their random effects are drawn)."""
        from .loo import group_loglik, observation_loglik

        if by == "observation":
            if nagq is not None:
                raise ValueError("nagq applies to by=<a grouping factor> (the quadrature of its effects)")
            return observation_loglik(self)
        return group_loglik(self, by, nagq=nagq)

    def add_log_likelihood(self) -> None:
        """Put each observation's log-likelihood into ``idata["log_likelihood"]`` under the response's name (what
        ``sample(log_likelihood=True)`` does): ``az.loo(post.idata)``, ``az.waic`` and ``az.compare`` read it."""
        import xarray as xr

        da = self.log_likelihood("observation")
        name = self.model.design.response
        self.idata["log_likelihood"] = xr.DataTree(xr.Dataset({name: da}))

    def loo(self, by: str = "observation", reloo: bool = True, k_threshold: float = 0.7, nagq: int | None = None,
            random_seed=None, progress: bool = True):
        """Leave-one-out cross-validation by PSIS (ArviZ's ``loo``): by observation, or by a grouping factor
        (``by``: leave one group out, on the groups' marginal log-likelihoods of :meth:`log_likelihood`).

        Groups whose Pareto k exceeds ``k_threshold`` are refitted without the group with the sampler's
        settings (arviz_stats' ``reloo``), their log predictive density computed exactly from the refit's draws,
        with a progress bar; ``reloo=False`` keeps the PSIS values (ArviZ then warns of the bad k). The result
        is ArviZ's ELPD object (``elpd``, ``se``, ``p``, pointwise ``elpd_i``, ``pareto_k``) with ``refits`` and
        ``compilations`` (of those refits) added."""
        from .loo import loo

        return loo(self, by=by, reloo=reloo, k_threshold=k_threshold, nagq=nagq, random_seed=random_seed,
                   progress=progress)

    @property
    def dispersion(self) -> float | None:
        """A dispersion family's θ or shape, its posterior median (what the printed family shows);
        None for the other families."""
        if not self.model.family.has_dispersion:
            return None
        return float(np.median(self.draws(self.model.family.dispersion_name)))

    def random_effects(self, ci: float | None = None) -> pd.DataFrame:
        """Predicted random effects b (posterior mean, SD, interval) per group, level and term."""
        check_ci(ci, allow_none=True)
        ci = ci or self.ci
        rows = []
        for block in self.model.design.random:
            stats = summarize_draws(self.draws(block.label), ci)
            for j, level in enumerate(block.levels):
                for t, term in enumerate(block.terms):
                    rows.append(_summary_row(stats, (j, t), group=block.group, level=level, term=term))
        return tidy_frame(rows, RE_COLUMNS)

    @property
    def flags(self) -> list[Flag]:
        """Structured findings of :meth:`diagnostics`: ``divergences``, ``rhat``, ``ess``, ``treedepth``,
        and ``quadrature`` after ``marginalize=True`` whose automatic choice of nodes did not settle
        (:class:`~bayesglmm.bayes.marginalized.QuadratureWarning`); empty when healthy."""
        d = self.diagnostics(warn=False)
        out = []
        if d["divergences"]:
            out.append(Flag("divergences", f"{d['divergences']} divergent transitions"))
        if d["max_r_hat"] > 1.01:
            out.append(Flag("rhat", f"max R-hat {d['max_r_hat']:.3f} for {d['worst_r_hat']!r}"))
        if d["min_ess_bulk"] < 400:
            out.append(Flag("ess", f"min bulk ESS {d['min_ess_bulk']:.0f} for {d['worst_ess_bulk']!r}"))
        if d["max_treedepth_share"] > MAX_TREEDEPTH_SHARE:
            out.append(Flag("treedepth", f"{d['max_treedepth_share']:.0%} of draws at the maximum tree depth"))
        from .marginalized import NAGQ_TOL

        change = self.idata["posterior"].attrs.get("quadrature_change")
        if change is not None and change >= NAGQ_TOL:
            out.append(Flag("quadrature", f"the marginal likelihood's quadrature did not settle ({change:.2g} between "
                                          f"the two largest rules, {self.idata['posterior'].attrs['marginalized_nagq']} "
                                          "nodes a dimension)"))
        return out

    # -- derived quantities
    def _flat(self, name: str, max_draws: int | None = None) -> np.ndarray:
        """Draws of ``name`` with chains stacked, shape (n, *shape), thinned evenly to ≤ ``max_draws``."""
        d = self.draws(name)
        d = d.reshape((-1,) + d.shape[2:])
        if max_draws is not None and len(d) > max_draws:
            d = d[np.linspace(0, len(d) - 1, max_draws).round().astype(int)]
        return d

    def covariance_draws(self, max_draws: int | None = None) -> list[list[np.ndarray]]:
        """Σ of every random block for each (stacked, thinned) draw: ``[draw][block]`` → (k, k)."""
        per_block = []
        for block in self.model.design.random:
            sd = self._flat(f"{block.label}_sd", max_draws)
            corr = (self._flat(f"{block.label}_corr", max_draws) if block.has_correlation
                    else np.broadcast_to(np.eye(block.n_terms), (len(sd), block.n_terms, block.n_terms)))
            per_block.append(sd[:, :, None] * corr * sd[:, None, :])
        n = len(per_block[0]) if per_block else 0
        return [[S[i] for S in per_block] for i in range(n)]

    def predict(self, new_data=None, kind: str = "mean", random_effects: bool = True,
                allow_new_levels: bool = True, ci: float | None = None, draws: bool = False):
        """Posterior of the mean (or linear predictor) of each row.

        Parameters
        ----------
        new_data : pandas.DataFrame, optional
            Rows to predict (the fitting data when None).
        kind : {"mean", "link"}
            g⁻¹(η) (a per-trial probability for Bernoulli/binomial) or η.
        random_effects : bool
            Include each draw's random effects; False: the population level (b = 0).
        allow_new_levels : bool
            Unseen group levels get b = 0 (the population-level prediction); False: an error.
        ci : float, optional
            Probability of the equal-tailed interval (None: the posterior's ``ci``).
        draws : bool
            Return the draws, shape (chain, draw, n), instead of the summary table.

        Returns
        -------
        pandas.DataFrame or ndarray
            ``estimate`` (posterior mean), ``std_error`` (posterior SD), ``conf_low``,
            ``conf_high`` (equal-tailed ``ci``) for each row.
        """
        from ..predict import new_data_matrices, prediction_frame, to_scale

        check_ci(ci, allow_none=True)
        nd = new_data_matrices(self.model.design, new_data, allow_new_levels, random_effects)
        beta = self.draws("beta")
        eta = nd.offset + np.einsum("cdp,np->cdn", beta, nd.X)
        if random_effects:
            for block, index, Xr in zip(self.model.design.random, nd.index, nd.Xr):
                b = self.draws(block.label)
                b = np.concatenate([b, np.zeros(b.shape[:2] + (1, b.shape[3]))], axis=2)  # index −1 → 0
                eta = eta + np.einsum("cdnk,nk->cdn", b[:, :, index, :], Xr)
        out = to_scale(self.model.family, eta, kind)
        if draws:
            return out
        stats = summarize_draws(out, ci or self.ci)
        return prediction_frame(stats["estimate"], stats["std_error"], stats["conf_low"], stats["conf_high"],
                                index=None if new_data is None else new_data.index)

    def posterior_predictive(self, random_seed=None, progressbar: bool = False):
        """Draw replicated data y_rep for the fitted rows (:func:`pymc.sample_posterior_predictive`).

        The draws are added to ``idata`` (group ``posterior_predictive``, variable ``y``) and returned.
        """
        if "posterior_predictive" not in self.idata.children:
            with self.model.pymc_model() as pm_model, quiet_pymc_log():
                # the priors' hyperparameters are data in the graph (prior_graph): the parameters
                # upstream of them are the posterior's draws, kept as they are, only y is drawn
                pp = pm.sample_posterior_predictive(self.idata, random_seed=random_seed, progressbar=progressbar,
                                                    freeze_vars=[rv.name for rv in pm_model.free_RVs],
                                                    return_inferencedata=True)
            self.idata["posterior_predictive"] = pp["posterior_predictive"]
            if "observed_data" not in self.idata.children and "observed_data" in pp.children:
                self.idata["observed_data"] = pp["observed_data"]
        return np.asarray(self.idata["posterior_predictive"]["y"].values)

    def plot_ppc(self, random_seed=None, num_samples: int = 100):
        """Posterior predictive check, observed vs replicated data (ArviZ).

        The plot suits the response: a rootogram of the counts (Poisson, binomial), a PAV-adjusted
        calibration plot for 0/1 data (Bernoulli), densities for a Gaussian response.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import arviz_plots as azp

        self.posterior_predictive(random_seed=random_seed)
        kind = self.model.family.response_kind
        if kind == "binary":
            pc = azp.plot_ppc_pava(self.idata, backend="matplotlib")
        elif kind == "count":
            pc = azp.plot_ppc_rootogram(self.idata, backend="matplotlib")
        else:
            pc = azp.plot_ppc_dist(self.idata, num_samples=num_samples, backend="matplotlib")
        return pc.viz["figure"].item()  # arviz-plots keeps the figure in a 0-d DataArray

    def marginal_fixed_effects(self, max_draws: int = 1000, ci: float | None = None) -> pd.DataFrame:
        """Posterior of the population-averaged coefficients (see :mod:`bayesglmm.marginal`).

        Each of up to ``max_draws`` draws (thinned evenly) of (β, Σ) is marginalized;
        the ``method`` column reads ``"nuts (marginal)"``.
        """
        from ..marginal import marginal_coefficient_draws

        check_ci(ci, allow_none=True)
        design = self.model.design
        sims = marginal_coefficient_draws(design, self.model.family, self._flat("beta", max_draws),
                                          self.covariance_draws(max_draws))
        stats = summarize_draws(sims[None], ci or self.ci)
        rows = [_summary_row(stats, j, term=t) for j, t in enumerate(design.fixed_names)]
        for r in rows:
            r["method"] = f"{METHOD} (marginal)"
        return tidy_frame(rows, FIXED_COLUMNS)

    def summary(self, ci: float | None = None, profile: bool = False) -> pd.DataFrame:
        """Fixed effects and variance components in one table, the columns of every result's
        summary (:data:`bayesglmm.results.SUMMARY_COLUMNS`); ``profile=True`` raises ``ValueError``,
        as :meth:`variance_components`."""
        return summary_table(self.fixed_effects(ci), self.variance_components(ci, profile=profile))

    @cached_property
    def _convergence(self) -> tuple:
        """(largest R-hat, its variable, smallest bulk ESS, its variable) over every free parameter.
        Computed once (an R-hat/ESS pass: 1 s for ohio's 541 parameters): a posterior's draws do not
        change after sampling, and ``flags``, ``print`` and ``_repr_html_`` all read it."""
        post = self.idata["posterior"]
        rmax, rname, emin, ename = -np.inf, None, np.inf, None
        for name in (v.name for v in self.model.pymc_model().free_RVs):
            stats = summarize_draws(post[name].values)
            rh, es = np.atleast_1d(stats["r_hat"]), np.atleast_1d(stats["ess_bulk"])
            # all NaN (one chain has no R-hat; a constant draw): nothing to report, and no NumPy warning
            r = np.nanmax(rh) if np.isfinite(rh).any() else np.nan
            e = np.nanmin(es) if np.isfinite(es).any() else np.nan
            if r > rmax:
                rmax, rname = float(r), name
            if e < emin:
                emin, ename = float(e), name
        return rmax, rname, emin, ename

    def diagnostics(self, warn: bool = True, max_r_hat: float = 1.01, min_ess: float = 400.0) -> dict:
        """Sampler health: divergences, the largest R-hat and smallest bulk ESS of every free parameter,
        and the share of draws whose trajectory stopped at the sampler's maximum tree depth.

        The last is about efficiency, not validity (``ok`` ignores it), as in Stan: more than
        :data:`MAX_TREEDEPTH_SHARE` of draws at the limit means a step size collapsed on a badly
        scaled or funnel-shaped posterior (1,000 leapfrog steps a draw instead of a few) and warns.

        Parameters
        ----------
        warn : bool
            Emit a :class:`SamplingWarning` when a check fails.
        max_r_hat, min_ess : float
            Thresholds (Vehtari et al. 2021 recommend R-hat ≤ 1.01 and bulk ESS ≥ 100 per chain).

        Returns
        -------
        dict
            ``divergences``, ``max_r_hat``, ``min_ess_bulk``, ``max_treedepth_share``, ``ok`` and the
            worst parameters.
        """
        rmax, rname, emin, ename = self._convergence
        stats = self.idata["sample_stats"]
        div = int(np.asarray(stats["diverging"].values).sum())
        at_max = next((stats[n].values for n in ("reached_max_treedepth", "maxdepth_reached") if n in stats), None)
        depth = float(np.mean(np.asarray(at_max, dtype=bool))) if at_max is not None else 0.0  # PyMC's, nutpie's name
        ok = div == 0 and rmax <= max_r_hat and emin >= min_ess
        out = {"divergences": div, "max_r_hat": rmax, "worst_r_hat": rname,
               "min_ess_bulk": emin, "worst_ess_bulk": ename, "max_treedepth_share": depth, "ok": ok}
        if warn and depth > MAX_TREEDEPTH_SHARE:
            warnings.warn(f"posterior diagnostics: {depth:.0%} of draws reached the maximum tree depth (a collapsed "
                          "step size: slow sampling of a badly scaled or funnel-shaped posterior; try more tuning "
                          "steps, marginalize=True or stronger priors)", SamplingWarning,
                          skip_file_prefixes=_PACKAGE_DIRS)
        if warn and not ok:
            problems = []
            if div:
                problems.append(f"{div} divergent transitions (try target_accept=0.95 or stronger priors)")
            if rmax > max_r_hat:
                problems.append(f"max R-hat {rmax:.3f} > {max_r_hat} for {rname!r} (chains disagree: sample longer)")
            if emin < min_ess:
                problems.append(f"min bulk ESS {emin:.0f} < {min_ess:.0f} for {ename!r} (sample more draws)")
            warnings.warn("posterior diagnostics: " + "; ".join(problems), SamplingWarning,
                          skip_file_prefixes=_PACKAGE_DIRS)
        return out


def with_observed_data(idata, model):
    """``idata`` with the response ``y`` (dims ``obs``) in its ``observed_data`` group, where the
    sampled graph held the likelihood as a potential (the fused Op, the marginal likelihood) and
    so gave none: as a graph with the observed variable gives it."""
    import xarray as xr

    from .model import observed_values

    if "observed_data" in idata.children and "y" in idata["observed_data"].data_vars:
        return idata
    y = observed_values(model.family, model.design.y)
    idata["observed_data"] = xr.DataTree(xr.Dataset({"y": ("obs", y)}, coords={"obs": np.arange(len(y))}))
    return idata


#: a correlated block's slope covariate whose mean is more SDs than this from 0 is warned about
UNCENTRED_SLOPE = 5.0


def warn_uncentred_slopes(design) -> list[str]:
    """Warn (:class:`~bayesglmm.results.CentringWarning`) about each correlated random slope whose
    covariate's mean is more than :data:`UNCENTRED_SLOPE` of its SDs from 0 (a year): the block's
    intercept is then at a covariate value far from the data, its correlation with the slope near
    ±1, where the LKJ prior's density vanishes and the non-centred effects NUTS moves are a thin
    ridge. The frequentist fits are unaffected (they fit a centred basis); the posterior is, so the
    warning names the covariate to centre. Returns the covariates warned about."""
    named = []
    for block in design.random:
        if not block.has_correlation or INTERCEPT_TERM not in block.terms:
            continue
        for t, term in enumerate(block.terms):
            x = np.asarray(block.Xr[:, t], dtype=float)
            sd = float(np.std(x))
            if term != INTERCEPT_TERM and sd > 0 and abs(float(np.mean(x))) > UNCENTRED_SLOPE * sd:
                named.append(term)
                warnings.warn(f"the random intercept of ({block.label.replace('+', ' + ')}) is at {term} = 0, "
                              f"{abs(float(np.mean(x))) / sd:.0f} SDs of {term} from its mean: its SD and its "
                              f"correlation with the slope (near ±1) are what the default priors and NUTS fit badly; "
                              f"centre {term} (subtract its mean) for the posterior", CentringWarning, stacklevel=4)
    return named


def resolve_marginalize(model, marginalize, nagq=None, pymc_model=None, families: str = "present") -> bool:
    """``marginalize`` as :meth:`bayesglmm.GLMM.sample` reads it: True or False as given. ``"auto"``
    is True where the marginal model is exact and faster (docs/performance.md): a linear mixed
    model of one grouping factor (integrated exactly), or one scalar random term of a
    canonical-link binomial or Poisson response (AGQ, whose nodes must then settle to the
    quadrature tolerance: :func:`sample_model` samples the full model when they do not); and
    where ``nagq`` is given. False otherwise, and for a ``pymc_model`` given or a prior sweep's
    graph of all families."""
    if isinstance(marginalize, bool):
        return marginalize
    if not isinstance(marginalize, str) or marginalize != "auto":
        raise ValueError(f"marginalize must be True, False or 'auto', got {marginalize!r}")
    if pymc_model is not None or families != "present":
        return False
    if nagq is not None:
        return True
    from .marginalized import check_marginalizable, exact_marginal, merged_design
    from .model import fused_likelihood

    try:
        check_marginalizable(model.design, model.family)
    except NotApplicableError:
        return False
    if exact_marginal(model.family):
        return True
    # the kernels' fast path (one exponential a node and group); the dispersion families and the
    # product rule of a correlated block are not faster than the full model on every case measured
    return fused_likelihood(model.family) and merged_design(model.design).random[0].n_terms == 1


def sample_model(model, draws=1000, tune=1000, chains=4, random_seed=None, cores=None,
                 target_accept=0.9, nuts_sampler="nutpie", progressbar=True, pymc_model=None,
                 marginalize: bool | str = "auto", nagq: int | None = None, families: str = "present",
                 **kwargs) -> Posterior:
    """Run NUTS on ``model.pymc_model()`` (or on ``pymc_model``, a graph of the same model built
    otherwise; or on a graph holding the prior ``families`` given, ``"all"`` for prior sweeps:
    :func:`bayesglmm.bayes.model.build_pymc_model`), or with ``marginalize=True`` on the marginal
    likelihood (:mod:`bayesglmm.bayes.marginalized`); see :meth:`bayesglmm.GLMM.sample`.

    With ``nuts_sampler="nutpie"`` the graph is built afresh, a canonical-link binomial or Poisson
    response's log-likelihood as one fused Op (``likelihood="fused"``,
    :mod:`bayesglmm.bayes.loglik_op`), and nutpie's compiled model is kept by structure
    (:data:`bayesglmm.bayes.compilation.compiled_models`): a later model of the same structure
    samples without compiling. A ``pymc_model`` given is compiled every time."""
    if nuts_sampler not in ("pymc", "nutpie", "numpyro", "blackjax"):
        raise ValueError(f"nuts_sampler must be 'pymc' or 'nutpie' (or numpyro/blackjax), got {nuts_sampler!r}")
    for name, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(value, (int, np.integer)) or value < (1 if name != "tune" else 0):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(target_accept, bool) or not isinstance(target_accept, (int, float, np.floating)) \
            or not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be a number in (0, 1), e.g. 0.9, got {target_accept!r}")
    if random_seed is not None:
        try:
            np.random.SeedSequence(random_seed)
        except (TypeError, ValueError):
            raise ValueError(f"random_seed must be None or a non-negative integer, got {random_seed!r}") from None
    cores = min(chains, 2) if cores is None else cores
    warn_uncentred_slopes(model.design)
    auto = isinstance(marginalize, str) and marginalize == "auto"
    marginalize = resolve_marginalize(model, marginalize, nagq, pymc_model, families)
    if nagq is not None and not marginalize:
        raise ValueError("nagq applies to marginalize=True (the quadrature that integrates the random effects out)")
    if marginalize:
        from ..frequentist.fit import MAX_NAGQ
        from .marginalized import NAGQ_TOL, QuadratureWarning, check_marginalizable, exact_marginal, nagq_settling, \
            reference_fit, sample_marginalized

        if pymc_model is not None:
            raise ValueError("marginalize=True builds its own graph: pymc_model cannot be given")
        check_marginalizable(model.design, model.family)
        exact = exact_marginal(model.family)  # a linear mixed model: no quadrature
        change = None  # the automatic choice's change to the next rule (None: nagq given, or exact)
        if exact and nagq is not None:
            raise NotApplicableError("nagq does not apply to a gaussian (identity link) model: marginalize=True integrates "
                             "its random effects out exactly")
        fit = reference_fit(model)  # one fit: the quadrature is chosen and β's frame centred at it
        if not exact and nagq is None:
            nagq, change = nagq_settling(model, fit=fit)
            if change >= NAGQ_TOL and auto:  # marginalize="auto": the full model, exact, instead
                marginalize = False
            elif change >= NAGQ_TOL:
                warnings.warn(f"marginalize=True: the quadrature did not settle (the marginal log-likelihood moved by "
                              f"{change:.2g} between the two largest rules, {nagq} nodes a dimension): the sampled "
                              "density is off by about that much; sample the full model (marginalize=False) or "
                              "give nagq=", QuadratureWarning, stacklevel=3)
        if not exact and (isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer))
                          or not 1 <= nagq <= MAX_NAGQ):
            raise ValueError(f"nagq must be an integer from 1 to {MAX_NAGQ}, got {nagq!r}")
    if marginalize:
        idata = sample_marginalized(model, nagq=nagq, draws=draws, tune=tune, chains=chains, cores=cores,
                                    random_seed=random_seed, target_accept=target_accept,
                                    nuts_sampler=nuts_sampler, progressbar=progressbar, fit=fit, **kwargs)
        idata["posterior"].attrs["marginalized"] = "exact" if exact else "quadrature"
        if not exact:
            idata["posterior"].attrs["marginalized_nagq"] = int(nagq)
        if change is not None:
            idata["posterior"].attrs["quadrature_change"] = float(change)
        return Posterior(model, with_observed_data(idata, model))
    from .model import build_pymc_model, structure_key
    from .nuts import sample_nutpie, sample_pymc

    if nuts_sampler == "nutpie":

        if pymc_model is None:
            # fresh graphs of our own (the key says what they hold), reused by structure
            def build(as_data):  # the response's log-likelihood fused into one Op where it can be
                return build_pymc_model(model.design, model.family, model.priors, families=families, as_data=as_data,
                                        likelihood="fused")

            key = structure_key(model.design, model.family, model.priors, families, "full", "fused")
        else:
            build, key = (lambda as_data: pymc_model), None
        idata = sample_nutpie(build, key, draws=draws, tune=tune, chains=chains, cores=cores,
                              random_seed=random_seed, target_accept=target_accept, progressbar=progressbar, **kwargs)
        return Posterior(model, with_observed_data(idata, model))
    if pymc_model is None and families != "present":
        pymc_model = build_pymc_model(model.design, model.family, model.priors, families=families)
    if pymc_model is None and nuts_sampler != "pymc":
        pymc_model = build_pymc_model(model.design, model.family, model.priors, as_data=False)
    idata = sample_pymc(model.pymc_model() if pymc_model is None else pymc_model, draws=draws, tune=tune, chains=chains,
                        cores=cores, random_seed=random_seed, target_accept=target_accept, nuts_sampler=nuts_sampler,
                        progressbar=progressbar, **kwargs)
    return Posterior(model, idata)
