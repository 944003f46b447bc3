"""Teaching fixed vs random: pooling and shrinkage, and naive vs clustered standard errors.

:func:`pooling` shows, level by level of a grouping factor, what treating it as absent
(complete pooling: an ordinary GLM), as fixed (no pooling: one intercept per level) or as
random (partial pooling: the GLMM's BLUP, and the posterior if given) does to the estimate.
:func:`naive_vs_clustered` puts side by side the fixed effects of an ordinary GLM that ignores
the clustering (naive SEs), the same GLM with cluster-robust SEs, GEE and the GLMM: naive SEs
are too small for cluster-level covariates, while the estimates move little (in a logit model
the GLMM's conditional coefficients are larger than the marginal ones).

The ordinary GLMs are fitted by statsmodels on the model's own design matrices.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .report import StudyDisplay
from .results import Flag, check_ci, run_method, wald_fixed_effects
from .scaling import column_frame

__all__ = ["pooling", "Pooling", "naive_vs_clustered", "NaiveVsClustered", "glm_estimates"]


def glm_estimates(design, family, X, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, covariance) of the statsmodels GLM of the response on ``X`` (binomial successes
    with trials as two columns), cluster-robust by ``groups`` when given. Fitted on X's orthonormal
    frame (:func:`bayesglmm.scaling.column_frame`) and mapped back: on the raw columns a covariate
    near 10⁸ came out −1.8e-8 instead of −0.113, and its cluster-robust SE 3 times too small at 10⁷."""
    import statsmodels.api as sm

    from .frequentist.gee import sm_family

    if family.has_dispersion:  # its dispersion estimated with β: not a statsmodels GLM
        return dispersion_glm(design, family, X, groups)
    y = design.y
    if design.trials is not None and family.needs_trials:
        y = np.column_stack([design.y, design.trials - design.y])
    A = column_frame(X).A
    glm = sm.GLM(y, X @ A, family=sm_family(family), offset=design.offset)
    fit = glm.fit() if groups is None else glm.fit(cov_type="cluster", cov_kwds={"groups": groups})
    return A @ np.asarray(fit.params), A @ np.asarray(fit.cov_params()) @ A.T


def dispersion_glm(design, family, X, groups=None) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, covariance) of a dispersion family's GLM (negative binomial, beta-binomial, Gamma)
    by maximum likelihood in (β, log φ), as MASS's glm.nb and glmmTMB without random effects: the
    covariance of β from the observed information (the inverse Hessian's β block, as glmmTMB's; glm.nb's
    holds θ fixed: on Salamanders its intercept's SE is 0.9 % smaller), or with ``groups`` the
    cluster-robust sandwich H⁻¹(Σ_g s_g s_gᵀ)H⁻¹ with statsmodels' small-sample factor
    G/(G − 1)·(n − 1)/(n − k). On X's orthonormal frame, as :func:`glm_estimates`."""
    from scipy import optimize

    from .frequentist.optimize import safe_inverse
    from .frequentist.pirls import glm_start

    y, trials, offset = design.y, design.trials, design.offset
    A = column_frame(X).A
    Z = X @ A
    p = Z.shape[1]
    start_family = family.with_dispersion(1.0)
    beta0 = glm_start(_with_X(design, Z), start_family)
    log_phi0 = np.log(family.dispersion_start(y, family.link.inverse(offset + Z @ beta0), trials))

    def rows(x):  # per-row log-likelihood and its score in (β, log φ)
        fam = family.with_dispersion(np.exp(x[-1]))
        eta = offset + Z @ x[:p]
        ll = fam.loglik_obs(y, fam.link.inverse(eta), trials)
        sb = fam.working(eta, y, trials).score[:, None] * Z
        h = 1e-5
        up = family.with_dispersion(np.exp(x[-1] + h)).loglik_obs(y, fam.link.inverse(eta), trials)
        down = family.with_dispersion(np.exp(x[-1] - h)).loglik_obs(y, fam.link.inverse(eta), trials)
        return ll, np.column_stack([sb, (up - down) / (2 * h)])

    def fun(x):
        ll, sc = rows(x)
        return -float(np.sum(ll)), -np.sum(sc, axis=0)

    x0 = np.concatenate([beta0, [log_phi0]])
    res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                            bounds=[(None, None)] * p + [(np.log(1e-6), np.log(1e8))],
                            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9})
    x = res.x
    k = len(x)
    H = np.zeros((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = 1e-5 * max(1.0, abs(x[j]))
        H[:, j] = (fun(x + e)[1] - fun(x - e)[1]) / (2 * e[j])
    bread = safe_inverse((H + H.T) / 2)
    if groups is None:
        cov = bread
    else:
        sc = rows(x)[1]
        G = int(np.max(groups)) + 1
        sg = np.zeros((G, k))
        np.add.at(sg, groups, sc)
        n = len(y)
        cov = (G / (G - 1.0)) * ((n - 1.0) / (n - k)) * bread @ (sg.T @ sg) @ bread
    return A @ x[:p], A @ cov[:p, :p] @ A.T


def _with_X(design, X):
    """``design`` with its fixed-effect matrix replaced by ``X``."""
    import dataclasses

    return dataclasses.replace(design, X=X)


def _ml_method(model):
    return "ml" if model.family.has_scale else "laplace"


class Pooling(StudyDisplay):
    """The result of :func:`pooling`.

    Attributes
    ----------
    model : GLMM
    group : str
    population : float
        The GLMM's population value of the intercept (β₀, the partial pooling target).
    complete : float
        The complete-pooling (ordinary GLM) intercept.
    flags : list of Flag
    """

    def __init__(self, model, group, frame, population, complete, flags, slope=None, population_slope=None):
        self.model, self.group, self._frame = model, group, frame
        self.population, self.complete, self.flags = population, complete, flags
        #: the random slope's term, if the group has one in the fixed part too (else None)
        self.slope, self.population_slope = slope, population_slope

    def table(self) -> pd.DataFrame:
        """One row per level: ``level``, ``n`` (observations), ``no_pooling`` (the level as a fixed
        effect), ``partial_pooling`` (β₀ + b̂ from the ML fit), ``partial_pooling_posterior`` (if a
        posterior was given), ``complete_pooling``, and ``shrinkage`` = the share of the distance
        from the no-pooling estimate to the population value that partial pooling moves
        (0: none, 1: all the way), all on the linear-predictor scale at the other covariates' 0.
        With a random slope that is also a fixed effect: ``no_pooling_slope``,
        ``partial_pooling_slope``, ``complete_pooling_slope``."""
        return self._frame.copy()

    def summary(self) -> pd.DataFrame:
        """The same as :meth:`table`."""
        return self.table()

    def _title(self):
        return [f"Pooling of the intercept over the levels of {self.group!r}: {self.model.formula}",
                f"population value (GLMM beta_0) {self.population:.4f}; complete pooling (GLM) {self.complete:.4f}"]

    def __repr__(self):
        return f"<Pooling {self.group!r}: {len(self._frame)} levels>"

    def plot(self, ax=None):
        """The shrinkage plot: each level's no-pooling estimate with an arrow to its partial-pooling
        estimate, marker size by group size, the population value as a line. With a random slope,
        the intercept-vs-slope version: arrows in the plane toward the population (β₀, β₁).

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        if self.slope is not None:
            return self._plot_2d(ax)

        t = self._frame.sort_values("no_pooling").reset_index(drop=True)
        if ax is None:
            fig, ax = plt.subplots(figsize=(7, 0.18 * len(t) + 2))
        else:
            fig = ax.figure
        y = np.arange(len(t))
        size = 20 + 180 * t["n"] / t["n"].max()
        ax.scatter(t["no_pooling"], y, s=size, facecolors="none", edgecolors="C0", label="no pooling (fixed)")
        ax.scatter(t["partial_pooling"], y, s=size, color="C1", label="partial pooling (random, ML)")
        for k in range(len(t)):
            ax.annotate("", xy=(t["partial_pooling"][k], y[k]), xytext=(t["no_pooling"][k], y[k]),
                        arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.8})
        if "partial_pooling_posterior" in t:
            ax.scatter(t["partial_pooling_posterior"], y, s=12, color="C2", marker="x", label="posterior mean")
        ax.axvline(self.population, color="C1", lw=0.8, ls="--", label="population value")
        ax.axvline(self.complete, color="k", lw=0.8, ls=":", label="complete pooling (GLM)")
        ax.set_yticks(y, t["level"])
        ax.set_xlabel("intercept of the level (linear-predictor scale)")
        ax.legend(fontsize="small", loc="best")
        fig.tight_layout()
        return fig


    def _plot_2d(self, ax=None):
        import matplotlib.pyplot as plt

        t = self._frame
        if ax is None:
            fig, ax = plt.subplots(figsize=(6.5, 5.5))
        else:
            fig = ax.figure
        size = 20 + 180 * t["n"] / t["n"].max()
        ax.scatter(t["no_pooling"], t["no_pooling_slope"], s=size, facecolors="none", edgecolors="C0",
                   label="no pooling (fixed)")
        ax.scatter(t["partial_pooling"], t["partial_pooling_slope"], s=size, color="C1",
                   label="partial pooling (random, ML)")
        for r in t.itertuples():
            ax.annotate("", xy=(r.partial_pooling, r.partial_pooling_slope), xytext=(r.no_pooling, r.no_pooling_slope),
                        arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.8})
        ax.scatter([self.population], [self.population_slope], marker="*", s=250, color="k",
                   label="population value")
        ax.set_xlabel("intercept of the level")
        ax.set_ylabel(f"slope of {self.slope!r} in the level")
        ax.legend(fontsize="small", loc="best")
        fig.tight_layout()
        return fig


def pooling(model, group: str | None = None, posterior=None) -> Pooling:
    """Complete, no and partial pooling of the intercept over the levels of ``group``.

    Parameters
    ----------
    model : GLMM
        With a random intercept on ``group``.
    group : str, optional
        The grouping factor (default: the model's only one).
    posterior : Posterior, optional
        Adds the posterior mean of β₀ + b for each level.

    Returns
    -------
    Pooling
    """
    d = model.design
    groups = [b.group for b in d.random if "(Intercept)" in b.terms]
    if group is None:
        if len(groups) != 1:
            raise ValueError(f"name the grouping factor: group= one of {groups}")
        group = groups[0]
    if group not in groups:
        raise ValueError(f"group must be a grouping factor with a random intercept; this model's are {groups}, "
                         f"got {group!r}")
    if "(Intercept)" not in d.fixed_names:
        raise ValueError("pooling needs a fixed intercept (the population value of the level intercepts)")
    block = next(b for b in d.random if b.group == group and "(Intercept)" in b.terms)
    flags = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(_ml_method(model))
        complete, _ = glm_estimates(d, model.family, d.X)
        # no pooling: one intercept (and slope) per level instead of the common one (the other columns kept)
        j0 = d.fixed_names.index("(Intercept)")
        slope = next((t for t in block.terms if t != "(Intercept)" and t in d.fixed_names), None)
        dummies = np.zeros((d.nobs, block.n_levels))
        dummies[np.arange(d.nobs), block.index] = 1.0
        per_level, drop = [dummies], [j0]
        if slope is not None:
            j1 = d.fixed_names.index(slope)
            per_level.append(dummies * d.X[:, [j1]])
            drop.append(j1)
        Xn = np.column_stack(per_level + [np.delete(d.X, drop, axis=1)])
        no, _ = glm_estimates(d, model.family, Xn)
    flags += fit.flags
    if any("overflow" in str(w.message) or "separation" in str(w.message).lower() for w in caught) \
            or np.any(np.abs(no[:block.n_levels]) > 15):
        flags.append(Flag("separation", "some levels have all-0 or all-1 responses: their no-pooling estimate "
                                        "is unbounded (partial pooling keeps it finite)"))
    beta0 = float(fit.beta[j0])
    t0 = block.terms.index("(Intercept)")
    b = fit.blups()[d.random.index(block)][:, t0]
    no_pool = np.asarray(no[:block.n_levels], dtype=float)
    partial = beta0 + b
    counts = np.bincount(block.index, minlength=block.n_levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = (no_pool - partial) / (no_pool - beta0)
    frame = pd.DataFrame({"level": list(block.levels), "n": counts, "no_pooling": no_pool,
                          "partial_pooling": partial})
    if posterior is not None:
        draws = posterior.draws("beta")[..., j0][..., None] + posterior.draws(block.label)[..., t0]
        frame["partial_pooling_posterior"] = draws.reshape(-1, block.n_levels).mean(axis=0)
    frame["complete_pooling"] = float(complete[j0])
    frame["shrinkage"] = shrink
    pop_slope = None
    if slope is not None:  # the slope's version of each column
        J, t1 = block.n_levels, block.terms.index(slope)
        pop_slope = float(fit.beta[j1])
        frame["no_pooling_slope"] = np.asarray(no[J:2 * J], dtype=float)
        frame["partial_pooling_slope"] = pop_slope + fit.blups()[d.random.index(block)][:, t1]
        frame["complete_pooling_slope"] = float(complete[j1])
    return Pooling(model, group, frame, beta0, float(complete[j0]), flags, slope=slope,
                   population_slope=pop_slope)


class NaiveVsClustered(StudyDisplay):
    """The result of :func:`naive_vs_clustered`: one table, one plot, the shared display."""

    METHODS = ("glm (naive)", "glm (cluster-robust)", "gee", "glmm")

    def __init__(self, model, group, long, flags):
        self.model, self.group, self._long, self.flags = model, group, long, flags

    def table(self) -> pd.DataFrame:
        """Long: ``term``, ``method``, ``estimate``, ``std_error``, ``conf_low``, ``conf_high``,
        ``se_ratio`` (SE ÷ the naive GLM's SE), ``cluster_level`` (the covariate is constant
        within every cluster)."""
        return self._long.copy()

    def summary(self) -> pd.DataFrame:
        """Wide: "estimate (SE)" per term and method."""
        t = self._long
        cells = t.assign(cell=[f"{e:.3f} ({s:.3f})" for e, s in zip(t["estimate"], t["std_error"])])
        wide = cells.pivot(index="term", columns="method", values="cell")
        order = list(dict.fromkeys(t["term"]))
        return wide.reindex(index=order, columns=[m for m in self.METHODS if m in wide.columns]).reset_index()

    def _display_table(self):
        return self.summary()

    def _title(self):
        return [f"Naive vs clustered standard errors, clusters = {self.group!r}: {self.model.formula}",
                "gee and glm coefficients are population-averaged; glmm's are conditional on the cluster"]

    def __repr__(self):
        return f"<NaiveVsClustered {self.group!r}: {', '.join(dict.fromkeys(self._long['method']))}>"

    def plot(self):
        """Estimates with 95% intervals per term, one colour per method (a forest plot).

        Returns
        -------
        matplotlib.figure.Figure
        """
        from .plots import forest

        long = self._long.assign(parameter=self._long["term"], kind="fixed")
        methods = [m for m in self.METHODS if m in set(long["method"])]
        return forest(long, methods, kinds=("fixed",), title=self.model.formula)


def naive_vs_clustered(model, ci: float = 0.95) -> NaiveVsClustered:
    """Fixed effects and SEs of a GLM ignoring the clusters, the same with cluster-robust SEs, GEE and the GLMM.

    Parameters
    ----------
    model : GLMM
        With one grouping factor (the cluster).
    ci : float

    Returns
    -------
    NaiveVsClustered
    """
    check_ci(ci)
    d = model.design
    if len(d.groups) != 1:
        raise ValueError(f"naive_vs_clustered needs one grouping factor (the cluster); this model has "
                         f"{len(d.groups)} ({', '.join(d.groups)})")
    block = next(b for b in d.random if b.group == d.groups[0])
    frames, flags = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        naive = glm_estimates(d, model.family, d.X)
        robust = glm_estimates(d, model.family, d.X, groups=block.index)
        frames.append(wald_fixed_effects(d.fixed_names, *naive, "glm (naive)", ci))
        frames.append(wald_fixed_effects(d.fixed_names, *robust, "glm (cluster-robust)", ci))
        for method in ("gee", _ml_method(model)):
            run = run_method(model, method)
            if run.status != "ok":  # skipped (GEE on several clusters cannot apply) or failed
                flags.append(Flag("not_converged", f"{method}: {run.error}"))
                continue
            fit = run.result
            flags += [Flag(f.kind, f"{method}: {f.message}") for f in fit.flags]
            frames.append(fit.fixed_effects(ci).assign(method="gee" if method == "gee" else "glmm"))
    long = pd.concat(frames, ignore_index=True)[["term", "method", "estimate", "std_error", "conf_low", "conf_high"]]
    naive_se = dict(zip(d.fixed_names, np.sqrt(np.diag(naive[1]))))
    long["se_ratio"] = long["std_error"] / long["term"].map(naive_se)
    within = {}
    for j, t in enumerate(d.fixed_names):
        col = d.X[:, j]
        lo = np.full(block.n_levels, np.inf)
        hi = np.full(block.n_levels, -np.inf)
        np.minimum.at(lo, block.index, col)
        np.maximum.at(hi, block.index, col)
        within[t] = t != "(Intercept)" and bool(np.all(hi - lo == 0))
    long["cluster_level"] = long["term"].map(within)
    return NaiveVsClustered(model, block.group, long, flags)
