"""Simulation: data sets drawn from a model, simulation studies of the estimators, and the
parametric-bootstrap likelihood-ratio test for a variance component.

Every replication draws its own seed from the study's seed with
:meth:`numpy.random.SeedSequence.spawn`, so a study with the same seed gives identical results
whatever runs it: inline (``executor="serial"``), a local process pool (the default), or a
Dask cluster (``executor=client.get_executor()``). Replications are sent to the executor in
chunks, so a worker builds each model once per chunk rather than once per fit.

References
----------
Breslow, N. E. and Lin, X. (1995). Bias correction in generalised linear mixed models with a
single component of dispersion. Biometrika 82, 81–91 (PQL's downward bias of the SD).
Halekoh, U. and Højsgaard, S. (2014). A Kenward–Roger approximation and parametric bootstrap
methods for tests in linear mixed models — the R package pbkrtest. JSS 59(9) (``PBmodcomp``).
Morris, T. P., White, I. R. and Crowther, M. J. (2019). Using simulation studies to evaluate
statistical methods. Statistics in Medicine 38, 2074–2102 (Monte Carlo SEs).
"""

from __future__ import annotations

import functools
import math
import os
import time
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .formula import parse_formula
from .report import StudyDisplay
from .results import RESIDUAL, Flag, check_ci, parameter_labels, run_method

__all__ = ["Truth", "truth_from", "simulate", "simulation_study", "SimulationStudy", "bootstrap_lrt",
           "BootstrapLRT"]


@dataclass(frozen=True)
class Truth:
    """Parameters to simulate from: β, one covariance matrix Σ per random block, σ (Gaussian), and a
    dispersion family's θ or shape (``dispersion``)."""

    beta: np.ndarray
    covariances: tuple
    sigma: float | None = None
    dispersion: float | None = None

    def table(self, model) -> pd.DataFrame:
        """``parameter`` → true value, labelled as every result's ``summary()``."""
        d = model.design
        rows = [{"parameter": t, "truth": float(b)} for t, b in zip(d.fixed_names, self.beta)]
        vc = []
        for block, S in zip(d.random, self.covariances):
            sd = np.sqrt(np.diag(S))
            vc += [{"group": block.group, "term": t, "term2": None, "kind": "sd", "value": sd[i]}
                   for i, t in enumerate(block.terms)]
            if block.has_correlation:
                vc += [{"group": block.group, "term": block.terms[i], "term2": block.terms[j], "kind": "corr",
                        "value": S[i, j] / (sd[i] * sd[j])}
                       for i in range(block.n_terms) for j in range(i + 1, block.n_terms)]
        if self.sigma is not None:
            vc.append({"group": RESIDUAL, "term": RESIDUAL, "term2": None, "kind": "sd", "value": self.sigma})
        if self.dispersion is not None:
            vc.append({"group": RESIDUAL, "term": model.family.dispersion_name, "term2": None, "kind": "dispersion",
                       "value": self.dispersion})
        if vc:
            frame = pd.DataFrame(vc)
            labels = parameter_labels(frame, d.fixed_names)
            rows += [{"parameter": p, "truth": float(v)} for p, v in zip(labels, frame["value"])]
        return pd.DataFrame(rows)


def truth_from(source, model) -> Truth:
    """A :class:`Truth` from a fit or posterior of ``model`` (its estimates; posterior means), a dict,
    or None (the model's ML fit: ``"laplace"``, ``"ml"`` for a Gaussian model).

    A dict holds ``"beta"`` (array in design order, or ``{term: value}``), ``"sd"``
    (``{(group, term): sd}``, or ``{group: sd}`` for a one-term block), optionally ``"corr"``
    (``{(group, term1, term2): r}``), ``"sigma"`` (Gaussian) and a dispersion family's ``"theta"`` or
    ``"shape"`` (or ``"dispersion"``).
    """
    d = model.design
    if source is None:  # the model's ML fit
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = model.fit("ml" if model.family.has_scale else "laplace")
    if isinstance(source, Truth):
        return source
    if isinstance(source, dict):
        beta = source.get("beta")
        if beta is None:
            raise ValueError("truth needs 'beta'")
        if isinstance(beta, dict):
            missing = [t for t in d.fixed_names if t not in beta]
            if missing:
                raise ValueError(f"truth 'beta' lacks the term(s) {missing}; the model's are {list(d.fixed_names)}")
            beta = [beta[t] for t in d.fixed_names]
        beta = np.asarray(beta, dtype=float)
        if beta.shape != (len(d.fixed_names),):
            raise ValueError(f"truth 'beta' must have {len(d.fixed_names)} values ({list(d.fixed_names)}), "
                             f"got shape {beta.shape}")
        sd, corr = source.get("sd", {}), source.get("corr", {})
        covs = []
        for block in d.random:
            s = []
            for t in block.terms:
                v = sd.get((block.group, t), sd.get(block.group) if block.n_terms == 1 else None)
                if v is None or not np.isfinite(v) or v < 0:
                    raise ValueError(f"truth 'sd' needs a non-negative value for ({block.group!r}, {t!r})")
                s.append(float(v))
            R = np.eye(block.n_terms)
            for i in range(block.n_terms):
                for j in range(i + 1, block.n_terms):
                    R[i, j] = R[j, i] = corr.get((block.group, block.terms[i], block.terms[j]), 0.0)
            covs.append(np.outer(s, s) * R)
        sigma = source.get("sigma")
        if model.family.has_scale and sigma is None:
            raise ValueError("a Gaussian model's truth needs 'sigma'")
        dispersion = None
        if model.family.has_dispersion:
            name = model.family.dispersion_name
            dispersion = source.get(name, source.get("dispersion"))
            if dispersion is None or not np.isfinite(dispersion) or dispersion <= 0:
                raise ValueError(f"a {model.family.name} model's truth needs {name!r}, a positive number "
                                 f"(got {dispersion!r})")
            dispersion = float(dispersion)
        return Truth(beta, tuple(covs), None if sigma is None else float(sigma), dispersion)
    if hasattr(source, "covariance_draws"):  # a Posterior: posterior means
        covs = source.covariance_draws(max_draws=1000)
        mean_cov = tuple(np.mean([c[k] for c in covs], axis=0) for k in range(len(d.random)))
        sigma = float(source.draws("sigma").mean()) if model.family.has_scale else None
        dispersion = (float(source.draws(model.family.dispersion_name).mean()) if model.family.has_dispersion
                      else None)
        return Truth(source.draws("beta").reshape(-1, len(d.fixed_names)).mean(axis=0), mean_cov, sigma, dispersion)
    if hasattr(source, "covariances"):  # an ML/REML/Laplace/AGQ/PQL fit
        sigma = source.dispersion if model.family.has_scale else None
        dispersion = source.dispersion if model.family.has_dispersion else None
        return Truth(np.asarray(source.beta, dtype=float), tuple(source.covariances()), sigma, dispersion)
    raise TypeError(f"truth must be a fit, a posterior, a dict or a Truth, got {type(source).__name__}")


def _column_name(expr: str) -> str:
    """``expr`` as a column name: a name written in backticks (a column name with a space) without them."""
    expr = expr.strip()
    return expr[1:-1] if len(expr) > 2 and expr[0] == expr[-1] == "`" and "`" not in expr[1:-1] else expr


def _response_columns(model, y):
    """The columns of the data that hold the response, set to simulated ``y``."""
    spec = parse_formula(model.formula)
    d = model.design
    kind = spec.response[0]
    names = set(d.data.columns)
    if kind == "name":
        name = _column_name(spec.response[1])
        if name not in names:
            raise ValueError(f"cannot simulate: the response {spec.response[1]!r} is an expression, not a column")
        return {name: y}
    succ = _column_name(spec.response[1])
    if succ not in names:
        raise ValueError(f"cannot simulate: the successes {spec.response[1]!r} are an expression, not a column")
    out = {succ: y}
    if kind == "cbind" and _column_name(spec.response[2]) in names:  # failures given as a column
        out[_column_name(spec.response[2])] = d.trials - y
    return out


def _as_column(values: np.ndarray, like: pd.Series):
    """Simulated ``values`` in the dtype of the column ``like`` they replace, where that dtype holds them
    exactly: counts stay integers (NumPy's or pandas' nullable ``Int64``), 0/1 stay booleans, nullable
    floats stay nullable; otherwise (a Gaussian draw for an integer column) float64, never rounded."""
    v = np.asarray(values, dtype=float)
    dtype = like.dtype
    if pd.api.types.is_bool_dtype(dtype) and np.all((v == 0) | (v == 1)):
        return pd.Series(v.astype(bool), index=like.index).astype(dtype)
    if pd.api.types.is_integer_dtype(dtype) and np.all(v == np.round(v)):
        cast = pd.Series(v.astype(np.int64), index=like.index)
        try:
            narrow = cast.astype(dtype)
        except (OverflowError, TypeError, ValueError):
            return cast
        return narrow if np.array_equal(narrow.to_numpy(dtype=float), v) else cast  # no wrap-around
    if pd.api.types.is_float_dtype(dtype):
        return pd.Series(v, index=like.index).astype(dtype)
    return v


def _draw(model, truth: Truth, rng) -> pd.DataFrame:
    d = model.design
    eta = d.offset + d.X @ truth.beta
    for block, S in zip(d.random, truth.covariances):
        b = rng.multivariate_normal(np.zeros(block.n_terms), S, size=block.n_levels, method="eigh")
        eta = eta + np.sum(b[block.index] * block.Xr, axis=1)
    second = truth.dispersion if model.family.has_dispersion else truth.sigma  # θ or the shape; σ
    y = model.family.sample(model.family.link.inverse(eta), d.trials, second, rng)
    data = d.data.copy()
    for col, values in _response_columns(model, y).items():
        data[col] = _as_column(values, data[col])
    return data


def simulate(model, params=None, n: int = 1, random_seed=None) -> list[pd.DataFrame]:
    """Data sets drawn from ``model`` at ``params``, keeping its design (X, groups, trials, offset).

    Parameters
    ----------
    model : GLMM
    params : fit, Posterior, dict or Truth, optional
        Where to simulate (see :func:`truth_from`); default: the model's ML fit
        (``"laplace"``, or ``"ml"`` for a Gaussian model).
    n : int
        Number of data sets.
    random_seed : int, optional

    Returns
    -------
    list of pandas.DataFrame
        Copies of the model's data with the response column(s) replaced, in their dtype where it
        holds the draws exactly (integer counts, nullable ``Int64``, booleans); a Gaussian draw for
        an integer column is float64.
    """
    _check_reps(n, "n")
    truth = truth_from(params, model)
    seeds = np.random.SeedSequence(random_seed).spawn(n)
    return [_draw(model, truth, np.random.default_rng(s)) for s in seeds]


#: options of the "nuts" method in a simulation study, with their defaults (as GLMM.sample's)
NUTS_OPTIONS = {"draws": 1000, "tune": 1000, "chains": 4, "target_accept": 0.9}


def _nuts_seed(seed: np.random.SeedSequence) -> int:
    # the first child of the replication's sequence: a stream apart from the data draw's
    child = np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, 0))
    return int(child.generate_state(1)[0])


def _summary(result, ci, profile):
    return result.summary(ci, profile=profile and result.can_profile)  # PQL, GEE, NUTS: no profile to take


def _fit_one(target, method, options, profile, ci, seed):
    """One fit of a replication (:func:`~bayesglmm.results.run_method`), its value the summary table."""
    if method == "nuts":
        # chains one after the other: the workers already run replications side by side
        options = {"random_seed": _nuts_seed(seed), "progressbar": False, "diagnose": False, "cores": 1,
                   **NUTS_OPTIONS, **options}
    return run_method(target, method, read=functools.partial(_summary, ci=ci, profile=profile), **options)


def _replicate_chunk(model, truth, methods, seeds, options, profile, ci):
    """Run replications ``seeds`` = [(index, SeedSequence)]: simulate, fit by each method, tidy rows.

    Every replication's model has the same graph (only the response differs), so NUTS compiles
    in a worker's first replication only; ``compilations`` counts it per fit. A fit that is skipped
    or fails (:func:`~bayesglmm.results.run_method`) is ``"failed"`` here."""
    from .bayes.compilation import count_compilations

    rows = []
    for rep, seed in seeds:
        data = _draw(model, truth, np.random.default_rng(seed))
        target = model.update(data)
        for method in methods:
            t0 = time.perf_counter()
            with count_compilations() as compiled:
                run = _fit_one(target, method, options.get(method, {}), profile, ci, seed)
                if run.status == "ok":
                    flags = run.result.flags
                    table, status, flagged, note = run.value, "ok", bool(flags), "; ".join(map(str, flags))
                else:
                    table, status, flagged, note = None, "failed", False, str(run.error)
            common = {"status": status, "flagged": flagged, "seconds": time.perf_counter() - t0,
                      "compilations": compiled.n, "note": note}
            if table is None:
                rows.append({"rep": rep, "method": method, "parameter": None, "estimate": np.nan,
                             "conf_low": np.nan, "conf_high": np.nan, **common})
                continue
            for r in table.itertuples():
                rows.append({"rep": rep, "method": method, "parameter": r.parameter, "estimate": r.estimate,
                             "conf_low": r.conf_low, "conf_high": r.conf_high, **common})
    return rows


def _run(fn, args_per_chunk, executor, progress, desc):
    """Run ``fn(*args)`` for each chunk on ``executor`` (None: a local process pool; "serial": inline)."""
    if progress:  # tqdm.auto picks the notebook widget (and warns when ipywidgets is missing)
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    bar = tqdm(total=len(args_per_chunk), desc=desc, disable=not progress, unit="chunk")
    out = [None] * len(args_per_chunk)
    try:
        if executor == "serial":
            for k, args in enumerate(args_per_chunk):
                out[k] = fn(*args)
                bar.update()
            return out
        own = executor is None
        if own:
            executor = ProcessPoolExecutor(max_workers=os.cpu_count() or 1)
        elif not isinstance(executor, Executor):
            raise TypeError(f"executor must be a concurrent.futures.Executor, 'serial' or None, "
                            f"got {type(executor).__name__}")
        try:
            futures = {executor.submit(fn, *args): k for k, args in enumerate(args_per_chunk)}
            from concurrent.futures import as_completed

            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update()
        finally:
            if own:
                executor.shutdown()
        return out
    finally:
        bar.close()


def _replicate(fn, before, after, n, random_seed, executor, progress, desc):
    """``fn(*before, chunk, *after)`` over chunks of [(r, SeedSequence(random_seed).spawn(n)[r])], four
    chunks per worker, on ``executor`` (see :func:`_run`); the list of each chunk's result, in order."""
    seeds = list(enumerate(np.random.SeedSequence(random_seed).spawn(n)))
    workers = 1 if executor == "serial" else (os.cpu_count() or 1)
    size = max(1, math.ceil(len(seeds) / (4 * workers)))
    args = [(*before, seeds[i:i + size], *after) for i in range(0, len(seeds), size)]
    return _run(fn, args, executor, progress, desc)


class SimulationStudy(StudyDisplay):
    """The result of :func:`simulation_study`.

    Attributes
    ----------
    model : GLMM
    truth : Truth
    methods : tuple of str
    replicates : pandas.DataFrame
        One row per (replication, method, parameter): ``estimate``, ``conf_low``, ``conf_high``,
        ``status`` ("ok"/"failed"), ``flagged``, ``seconds``, ``compilations`` (Numba compilations
        during the fit: NUTS compiles in a worker's first replication only), ``note``.
    n_reps : int
    random_seed : int or None
    flags : list of Flag
        ``not_converged`` when some fits failed.
    """

    def __init__(self, model, truth, methods, replicates, n_reps, random_seed, ci):
        self.model, self.truth, self.methods = model, truth, tuple(methods)
        self.replicates, self.n_reps, self.random_seed, self.ci = replicates, n_reps, random_seed, ci
        failed = replicates.drop_duplicates(["rep", "method"])
        failed = failed[failed["status"] == "failed"]
        self.flags = [Flag("not_converged", f"{m}: {len(g)} of {n_reps} fits failed")
                      for m, g in failed.groupby("method")]

    def table(self) -> pd.DataFrame:
        """Per parameter and method: truth, mean, bias, RMSE, coverage of the ``ci`` interval, each
        with its Monte Carlo SE (Morris et al. 2019), the share of fits that failed or were
        flagged, the mean seconds per fit and the Numba compilations over all its fits."""
        truth = self.truth.table(self.model).set_index("parameter")["truth"]
        reps = self.replicates
        per_fit = reps.drop_duplicates(["rep", "method"])
        rows = []
        for method in self.methods:
            fits = per_fit[per_fit["method"] == method]
            share_failed = float((fits["status"] == "failed").mean())
            share_flagged = float(fits["flagged"].mean())
            secs, compiles = float(fits["seconds"].mean()), int(fits["compilations"].sum())
            ok = reps[(reps["method"] == method) & (reps["status"] == "ok")]
            for param, t in truth.items():
                e = ok.loc[ok["parameter"] == param]
                est = e["estimate"].to_numpy(dtype=float)
                est = est[np.isfinite(est)]
                n = len(est)
                row = {"parameter": param, "method": method, "truth": t, "n_ok": n}
                if n:
                    err = est - t
                    sd = est.std(ddof=1) if n > 1 else np.nan
                    mse = float(np.mean(err**2))
                    rmse = math.sqrt(mse)
                    row.update(mean=est.mean(), bias=err.mean(), bias_mcse=sd / math.sqrt(n),
                               rmse=rmse, rmse_mcse=(np.std(err**2, ddof=1) / math.sqrt(n)) / (2 * rmse)
                               if n > 1 and rmse > 0 else np.nan)
                    lo, hi = e["conf_low"].to_numpy(dtype=float), e["conf_high"].to_numpy(dtype=float)
                    has = np.isfinite(lo) & np.isfinite(hi)
                    if has.any():
                        cover = float(np.mean((lo[has] <= t) & (t <= hi[has])))
                        row.update(coverage=cover, coverage_mcse=math.sqrt(cover * (1 - cover) / has.sum()))
                row.update(share_failed=share_failed, share_flagged=share_flagged, seconds_per_fit=secs,
                           compilations=compiles)
                rows.append(row)
        cols = ["parameter", "method", "truth", "n_ok", "mean", "bias", "bias_mcse", "rmse", "rmse_mcse",
                "coverage", "coverage_mcse", "share_failed", "share_flagged", "seconds_per_fit",
                "compilations"]
        out = pd.DataFrame(rows)
        for c in cols:
            if c not in out.columns:
                out[c] = np.nan
        return out[cols]

    def summary(self) -> pd.DataFrame:
        """The same as :meth:`table`."""
        return self.table()

    def plot(self):
        """Bias ± 2 Monte Carlo SEs (left) and coverage ± 2 MCSE (right), per parameter and method.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        tab = self.table()
        params = list(dict.fromkeys(tab["parameter"]))
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(params) + 1.5), sharey=True)
        ypos = {p: i for i, p in enumerate(params)}
        width = 0.6 / max(1, len(self.methods))
        for k, method in enumerate(self.methods):
            t = tab[tab["method"] == method]
            y = np.array([ypos[p] for p in t["parameter"]]) + (k - (len(self.methods) - 1) / 2) * width
            axes[0].errorbar(t["bias"], y, xerr=2 * t["bias_mcse"], fmt="o", label=method)
            axes[1].errorbar(t["coverage"], y, xerr=2 * t["coverage_mcse"], fmt="o", label=method)
        axes[0].axvline(0, color="grey", lw=0.8)
        axes[1].axvline(self.ci, color="grey", lw=0.8)
        axes[0].set_yticks(range(len(params)), params)
        axes[0].invert_yaxis()
        axes[0].set_xlabel("bias (± 2 MCSE)")
        axes[1].set_xlabel(f"coverage of the {self.ci:.0%} interval (± 2 MCSE)")
        axes[0].legend(loc="best", fontsize="small")
        fig.suptitle(f"{self.n_reps} replications: {self.model.formula}", fontsize="medium")
        fig.tight_layout()
        return fig

    def _title(self) -> list[str]:
        return [f"Simulation study: {self.n_reps} replications of {self.model.formula} "
                f"({self.model.family.name}, {self.model.family.link.name} link), seed {self.random_seed}",
                f"Methods: {', '.join(self.methods)}"]

    def __repr__(self):
        return f"<SimulationStudy {self.model.formula!r}: {self.n_reps} replications, {', '.join(self.methods)}>"

def _check_reps(n, name):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")


def simulation_study(model, truth=None, methods=("laplace", "pql"), n_reps: int = 100, random_seed=None,
                     executor=None, progress: bool = True, profile: bool = False, ci: float = 0.95,
                     **method_options) -> SimulationStudy:
    """How each method estimates ``model``'s parameters on data simulated at ``truth``.

    Parameters
    ----------
    model : GLMM
        Its design (X, groups, trials, offset) is kept; only the response is redrawn.
    truth : fit, Posterior, dict or Truth, optional
        The true parameters (see :func:`truth_from`); default: the model's ML fit.
    methods : sequence of str
        Frequentist methods of :meth:`GLMM.fit` (``"laplace"``, ``"agq"``, ``"pql"``, ``"ml"``,
        ``"reml"``; ``"gee"`` estimates other, population-averaged, parameters) and ``"nuts"``
        (:meth:`GLMM.sample` under the model's priors; estimate = posterior mean, interval =
        equal-tailed; chains run one after the other inside a worker; the replications share one
        compiled graph, so a worker compiles once).
    n_reps : int
    random_seed : int, optional
        Replication ``r`` uses ``SeedSequence(random_seed).spawn(n_reps)[r]``: the same seed gives
        the same study whatever the executor and the number of workers.
    executor : concurrent.futures.Executor, "serial" or None
        None: a local process pool (one worker per core); ``"serial"``: inline; or any executor,
        e.g. a Dask cluster's ``client.get_executor()``.
    progress : bool
        A progress bar (tqdm) over chunks of replications.
    profile : bool
        Profile-likelihood intervals for the SDs (their coverage), at a few refits per SD, for the
        methods that have them (``can_profile``: not ``"pql"``, ``"gee"`` or ``"nuts"``).
    ci : float
        Interval probability for the coverage.
    **method_options
        Per-method option dicts passed to :meth:`GLMM.fit`, e.g. ``pql={"dispersion": "estimate"}``,
        or to :meth:`GLMM.sample` for ``nuts`` (``draws``, ``tune``, ``chains``, ``target_accept``;
        defaults 1000, 1000, 4, 0.9).

    Returns
    -------
    SimulationStudy
    """
    _check_reps(n_reps, "n_reps")
    check_ci(ci)
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    from .frequentist.fit import METHODS

    allowed = (*METHODS, "nuts")
    bad = [m for m in methods if m not in allowed]
    if bad or not methods:
        raise ValueError(f"methods must be among {', '.join(allowed)}; got {bad or methods}")
    for name, opts in method_options.items():
        if name not in methods or not isinstance(opts, dict):
            raise TypeError(f"unexpected option {name!r}: per-method options are dicts keyed by a requested method")
    unknown = set(method_options.get("nuts", {})) - set(NUTS_OPTIONS)
    if unknown:
        raise TypeError(f"nuts options {sorted(unknown)} are not accepted; use {', '.join(NUTS_OPTIONS)}")
    truth = truth_from(truth, model)
    parts = _replicate(_replicate_chunk, (model, truth, tuple(methods)), (method_options, profile, ci), n_reps,
                       random_seed, executor, progress, "simulation")
    replicates = pd.DataFrame([row for part in parts for row in part]).sort_values(
        ["rep", "method"], kind="stable", key=lambda s: s if s.name == "rep" else s.map(list(methods).index)
    ).reset_index(drop=True)
    return SimulationStudy(model, truth, methods, replicates, n_reps, random_seed, ci)


# -- parametric bootstrap LRT ------------------------------------------------------------------

def _bootstrap_chunk(full_model, reduced_model, truth, method, seeds):
    out = []
    for rep, seed in seeds:
        data = _draw(reduced_model, truth, np.random.default_rng(seed))
        full = run_method(full_model, method, data=data)
        reduced = run_method(reduced_model, method, data=data) if full.status == "ok" else full
        ok = full.status == reduced.status == "ok"  # else a refit was skipped or failed: NaN
        out.append((rep, max(0.0, 2.0 * (full.result.loglik - reduced.result.loglik)) if ok else np.nan))
    return out


class BootstrapLRT(StudyDisplay):
    """The result of :func:`bootstrap_lrt`.

    Attributes
    ----------
    statistic : float
        The observed LRT statistic 2(ℓ_full − ℓ_reduced).
    null_statistics : ndarray
        The statistic on each data set simulated from the reduced fit (NaN where a refit failed).
    p_value, mcse : float
        (1 + #{T* ≥ T}) / (1 + n), as pbkrtest's ``PBmodcomp``, and its Monte Carlo SE.
    lrt : pandas.DataFrame
        :func:`bayesglmm.lrt`'s row: naive χ² and boundary-mixture p-values.
    flags : list of Flag
    """

    def __init__(self, full, reduced, statistic, null_statistics, lrt_row, random_seed):
        self.full, self.reduced, self.model = full, reduced, full.model
        self.statistic, self.null_statistics, self.lrt, self.random_seed = statistic, null_statistics, lrt_row, random_seed
        ok = null_statistics[np.isfinite(null_statistics)]
        self.n, self.n_failed = len(ok), int(np.sum(~np.isfinite(null_statistics)))
        self.p_value = (1 + np.sum(ok >= statistic - 1e-10)) / (1 + self.n)
        self.mcse = math.sqrt(self.p_value * (1 - self.p_value) / max(self.n, 1))
        self.flags = ([Flag("not_converged", f"{self.n_failed} of {len(null_statistics)} bootstrap refits failed")]
                      if self.n_failed else [])

    def table(self) -> pd.DataFrame:
        """One row: statistic, df, the naive χ², mixture and bootstrap p-values, the bootstrap's MCSE."""
        r = self.lrt.iloc[0]
        return pd.DataFrame([{"statistic": self.statistic, "df": r["df"], "p_value_naive": r["p_value_naive"],
                              "p_value_mixture": r["p_value"], "null_distribution": r["null_distribution"],
                              "p_value_bootstrap": self.p_value, "bootstrap_mcse": self.mcse, "n_bootstrap": self.n,
                              "n_failed": self.n_failed, "method": r["method"]}])

    def summary(self) -> pd.DataFrame:
        """The same as :meth:`table`."""
        return self.table()

    def plot(self):
        """The bootstrap null distribution of the statistic against the χ̄² mixture of :func:`bayesglmm.lrt`
        (as survival functions), with the observed statistic.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        r = self.lrt.iloc[0]
        df = int(r["df"])
        ok = np.sort(self.null_statistics[np.isfinite(self.null_statistics)])
        xs = np.linspace(0, max(ok.max() if len(ok) else 1, self.statistic) * 1.1 + 1e-9, 200)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.step(ok, 1 - np.arange(1, len(ok) + 1) / len(ok), where="post", label=f"bootstrap ({self.n} draws)")
        ax.plot(xs, stats.chi2.sf(xs, df), "--", label=f"naive chi2({df})")
        if "0.5*" in r["null_distribution"]:
            q = df - 1
            mix = 0.5 * (stats.chi2.sf(xs, q) if q > 0 else (xs == 0).astype(float)) + 0.5 * stats.chi2.sf(xs, df)
            ax.plot(xs, mix, label=r["null_distribution"])
        ax.axvline(self.statistic, color="k", lw=0.8, label=f"observed {self.statistic:.2f}")
        ax.set_xlabel("LRT statistic")
        ax.set_ylabel("P(T > t) under H0")
        ax.legend(fontsize="small")
        fig.tight_layout()
        return fig

    def _title(self) -> list[str]:
        return [f"Parametric bootstrap LRT: {self.full.model.formula}  vs  {self.reduced.model.formula}"]

    def __repr__(self):
        return f"<BootstrapLRT statistic={self.statistic:.3f}, p={self.p_value:.4f} (n={self.n})>"

def bootstrap_lrt(full, reduced, n: int = 200, random_seed=None, executor=None,
                  progress: bool = True) -> BootstrapLRT:
    """Parametric-bootstrap likelihood-ratio test of ``reduced`` against ``full`` (pbkrtest's ``PBmodcomp``).

    ``n`` data sets are simulated from the reduced fit; both models are refitted to each by the
    fits' method; p = (1 + #{T* ≥ T}) / (1 + n). Shown next to :func:`bayesglmm.lrt`'s naive χ²
    and boundary-mixture p-values.

    Parameters
    ----------
    full, reduced : MLFit
        Fits by one likelihood method (``"laplace"``, ``"agq"``, ``"ml"``) of nested models of the
        same data, as for :func:`bayesglmm.lrt` (which checks them).
    n : int
    random_seed : int, optional
    executor : concurrent.futures.Executor, "serial" or None
        As :func:`simulation_study`.
    progress : bool

    Returns
    -------
    BootstrapLRT

    Raises
    ------
    ValueError
        As :func:`bayesglmm.lrt`, before anything is simulated: fits of different methods or
        without a likelihood, or models that are not nested (other response data or family, a
        fixed-effect column or random block outside the full model's).
    """
    from .frequentist.lrt import lrt

    _check_reps(n, "n")
    row = lrt(full, reduced)
    truth = truth_from(reduced, reduced.model)
    parts = _replicate(_bootstrap_chunk, (full.model, reduced.model, truth, full.method), (), n, random_seed,
                       executor, progress, "bootstrap")
    t = np.full(n, np.nan)
    for part in parts:
        for rep, value in part:
            t[rep] = value
    return BootstrapLRT(full, reduced, float(row["statistic"].iloc[0]), t, row, random_seed)
