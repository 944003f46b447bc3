"""One model, every method: the posterior and the frequentist fits side by side.

:func:`compare` fits the *same* :class:`~bayesglmm.GLMM` — same design matrices, same
family — by each requested method and joins their tidy tables on the parameter labels.

What the columns mean, and why the methods differ
-------------------------------------------------
``nuts``
    Posterior mean, posterior SD and an equal-tailed interval (default priors unless
    ``priors=`` is given). Flags: divergences, the largest R-hat, the smallest bulk ESS, and the
    share of draws at the maximum tree depth when above 1%.
``laplace``, ``agq``
    Maximum likelihood (Laplace approximation; adaptive Gauss–Hermite with ``nagq``
    nodes, chosen until the log-likelihood settles unless given, named in the note). Wald intervals for β (SEs from the Hessian in (θ, β), as glmer), and
    profile-likelihood intervals for the SDs and correlations (``profile=True``). With large SDs and small
    clusters the Laplace approximation is biased and AGQ is the better likelihood.
    AGQ applies to one grouping factor only: on crossed or nested models it is skipped.
``pql``
    Penalized quasi-likelihood (Breslow–Clayton; ``dispersion="estimate"`` for
    glmmPQL's default). It maximises no likelihood; for binary data and small counts
    its variance components are biased towards 0 (Breslow & Lin 1995).
``gee``
    The **population-averaged** (marginal) model, robust SEs. For a non-identity link
    its coefficients are not the GLMM's subject-specific β: they are attenuated towards
    0. To compare like with like, ``marginal=True`` adds rows ``"agq (marginal)"`` (or
    ``"laplace (marginal)"`` without AGQ) and ``"nuts (marginal)"``: the GLMM's β integrated
    over the fitted random-effect
    distribution (:mod:`bayesglmm.marginal`, as GLMMadaptive's ``marginal_coefs``).
    GEE needs a single grouping factor to cluster on: otherwise it is skipped.

A method that cannot apply to the model is skipped, with the reason in the table
(``status = "skipped"``), never an exception: the engines say so by
:class:`~bayesglmm.results.NotApplicableError` (AGQ on a crossed model, GEE without a single
cluster, ML/REML on a non-Gaussian model). A method that applied and broke is ``status = "failed"``
with the reason: any other error during the fit (``LinAlgError``, which NumPy makes a ``ValueError``
too, ``FloatingPointError``, :class:`~bayesglmm.results.FitFailedError`, PyMC's ``SamplingError``),
or NaN estimates, as GEE under separation. :func:`~bayesglmm.results.run_method` runs each method
and classifies it so, as it does for the simulation studies. Findings about a fit (separation naming the term, a singular fit naming
the boundary, non-convergence, NaN SEs) are read from each result's ``flags``.
"""

from __future__ import annotations

import functools
import time
import warnings

import numpy as np
import pandas as pd

from .results import NotApplicableError, check_ci, combine_tables, run_method

__all__ = ["compare", "Comparison", "DEFAULT_METHODS", "LONG_COLUMNS"]

DEFAULT_METHODS = ("nuts", "laplace", "agq", "pql", "gee")
ALL_METHODS = ("nuts", "laplace", "agq", "pql", "gee", "ml", "reml")
LONG_COLUMNS = ("parameter", "kind", "group", "term", "term2", "method", "estimate", "std_error",
                "conf_low", "conf_high", "interval", "seconds", "converged", "flags", "status", "note")
NOTES = {
    "nuts": "posterior mean and SD, equal-tailed interval",
    "laplace": "ML by the Laplace approximation",
    "agq": "ML by adaptive Gauss-Hermite quadrature",
    "pql": "penalized quasi-likelihood: no likelihood; SDs biased low for binary data and small counts",
    "gee": "population-averaged (marginal) coefficients, robust SEs",
    "ml": "Gaussian LMM by ML",
    "reml": "Gaussian LMM by REML",
    "marginal": "the GLMM's coefficients averaged over the random effects: compare with gee",
}


def _frame(fe: pd.DataFrame, vc: pd.DataFrame | None, **columns) -> pd.DataFrame:
    out = combine_tables(fe, vc)
    for k, v in columns.items():
        out[k] = v
    return out


_NOISE = (DeprecationWarning, FutureWarning, RuntimeWarning)  # numerical/library chatter, not findings


def _findings(caught) -> list:
    """The warnings worth reporting (convergence, singular fit, separation, ...), once each."""
    seen, out = set(), []
    for w in caught:
        if not issubclass(w.category, _NOISE) and str(w.message) not in seen:
            seen.add(str(w.message))
            out.append(w)
    return out


def _fit_flags(result) -> list[str]:
    """The result's structured flags as short text for the table."""
    return [str(f) for f in getattr(result, "flags", [])]


class Comparison:
    """The result of :func:`compare`.

    Attributes
    ----------
    model : GLMM
    methods : tuple of str
        The methods requested, in order.
    results : dict
        Method → its result (:class:`~bayesglmm.bayes.posterior.Posterior`,
        :class:`~bayesglmm.frequentist.MLFit` or :class:`~bayesglmm.frequentist.gee.GEEFit`).
    skipped : dict
        Method → the reason it could not apply (``status="skipped"``).
    failed : dict
        Method → why it applied and broke (``status="failed"``: an error, or NaN estimates).
    ci : float
    """

    def __init__(self, model, methods, results, skipped, long: pd.DataFrame, ci: float, failed=None):
        self.model, self.methods, self.results, self.skipped, self.ci = model, tuple(methods), results, skipped, ci
        self.failed = dict(failed or {})
        self._long = long

    def __repr__(self):
        ran = ", ".join(m for m in self.methods if m in self.results) or "none"
        skipped = "; ".join(f"{m}: {r}" for m, r in self.skipped.items())
        return (f"<Comparison of {self.model.formula!r}: {ran}" + (f" (skipped {skipped})" if skipped else "") + ">")

    # -- tables
    def table(self) -> pd.DataFrame:
        """The long tidy table: one row per (parameter, method); a skipped method (cannot apply)
        has one row with ``status="skipped"``, a failed one (applied and broke) one row with
        ``status="failed"``, the reason in ``note``."""
        return self._long.copy()

    def method_columns(self) -> list[str]:
        """The ``method`` values of the table in display order (marginal rows right after gee)."""
        present = list(dict.fromkeys(self._long.loc[self._long["status"] == "ok", "method"]))
        base = [m for m in self.methods if m in present]
        marg = [m for m in present if m.endswith("(marginal)")]
        if "gee" in base:
            k = base.index("gee") + 1
            return base[:k] + marg + base[k:]
        return base + marg

    def wide(self, value: str = "estimate") -> pd.DataFrame:
        """One row per parameter, one column per method, holding ``value``
        (``"estimate"``, ``"std_error"``, ``"conf_low"`` or ``"conf_high"``)."""
        ok = self._long[self._long["status"] == "ok"]
        order = list(dict.fromkeys(ok["parameter"]))
        wide = ok.pivot_table(index="parameter", columns="method", values=value, aggfunc="first", dropna=False)
        wide = wide.reindex(index=order, columns=self.method_columns())
        wide.columns.name = None
        return wide

    def formatted(self, digits: int = 3) -> pd.DataFrame:
        """The wide table as text cells: "estimate (SE or posterior SD)", or "estimate [low, high]"
        for an SD with a profile interval and no SE."""
        est, se = self.wide("estimate"), self.wide("std_error")
        lo, hi = self.wide("conf_low"), self.wide("conf_high")

        def cell(e, s, a, b):
            if pd.isna(e):
                return ""
            if not pd.isna(s):
                return f"{e:.{digits}f} ({s:.{digits}f})"
            if not (pd.isna(a) or pd.isna(b)):  # e.g. an ML SD with its profile interval
                return f"{e:.{digits}f} [{a:.{digits - 1}f}, {b:.{digits - 1}f}]"
            return f"{e:.{digits}f}"

        return pd.DataFrame({c: [cell(*v) for v in zip(est[c], se[c], lo[c], hi[c])] for c in est.columns},
                            index=est.index)

    def notes(self) -> list[str]:
        """One line per method: what it estimates, its run time and flags; skipped methods with the reason."""
        lines = []
        runs = self._long[self._long["status"] == "ok"].drop_duplicates("method")
        for r in runs.itertuples():
            flags = f"; flags: {r.flags}" if r.flags else ""
            lines.append(f"{r.method}: {r.note} ({r.seconds:.2f} s{flags})")
        lines += [f"{m}: skipped — {why}" for m, why in self.skipped.items()]
        lines += [f"{m}: FAILED — {why}" for m, why in self.failed.items()]
        return lines

    def to_markdown(self, digits: int = 3) -> str:
        """The wide table as Markdown, "estimate (SE or posterior SD)", with the methods' notes.

        A ``|`` inside a cell (the SDs' labels, ``sd((Intercept)|herd)``) is escaped as ``\\|``,
        so that the table renders as one on GitHub and in MyST."""
        wide = self.formatted(digits)
        wide.index = wide.index.map(lambda s: str(s).replace("|", "\\|"))
        table = wide.to_markdown()
        return table + "\n\n" + "\n".join(f"- {line}" for line in self.notes()) + "\n"

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{line}</li>" for line in self.notes())
        return (f"<p><b>{self.model.formula}</b> ({self.model.family.name}, {self.model.family.link.name} link)</p>"
                + self.formatted(3).to_html() + f"<ul>{notes}</ul>")

    # -- plot
    def plot(self, kinds=("fixed", "sd")):
        """Forest plot of every fixed effect and SD, one colour per method, with intervals.

        Returns
        -------
        matplotlib.figure.Figure
            One panel per kind (fixed effects; SDs, whose scale differs).
        """
        from .plots import forest

        return forest(self._long[self._long["status"] == "ok"], self.method_columns(), kinds=kinds,
                      title=self.model.formula)


def _route(method_options: dict) -> dict:
    for name, opts in method_options.items():
        if name not in ALL_METHODS:
            raise TypeError(f"compare() got an unexpected keyword argument {name!r}; per-method options are "
                            f"dicts keyed by a method ({', '.join(ALL_METHODS)})")
        if not isinstance(opts, dict):
            raise TypeError(f"options for method {name!r} must be a dict, got {type(opts).__name__}")
    return method_options


def compare(model, methods=DEFAULT_METHODS, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
            random_seed=None, progressbar: bool = True, priors: dict | None = None, nagq: int | None = None,
            dispersion: str = "fixed", correlation: str = "exchangeable", profile: bool = True,
            marginal: bool = True, ci: float = 0.95, report=None, **method_options) -> Comparison:
    """Fit ``model`` by every method in ``methods`` and put the estimates side by side.

    Parameters
    ----------
    model : GLMM
    methods : sequence of str, or str
        Any of ``"nuts"``, ``"laplace"``, ``"agq"``, ``"pql"``, ``"gee"``, ``"ml"``, ``"reml"``
        (a string may list several, comma-separated), each once.
    draws, tune, chains, random_seed, progressbar
        For ``"nuts"`` (see :meth:`GLMM.sample`); ``random_seed`` also seeds the marginal SEs.
    priors : dict, optional
        Prior overrides for ``"nuts"`` (the model is rebuilt with them; see :mod:`bayesglmm.priors`).
    nagq : int, optional
        Quadrature nodes per dimension for ``"agq"``, taken as given; None (default): chosen as
        :meth:`GLMM.fit` chooses them, from 25 (a scalar random effect) up until the
        log-likelihood settles. The ``note`` column names the nodes used (``nagq=51``).
    dispersion : {"fixed", "estimate"}
        For ``"pql"``.
    correlation : {"exchangeable", "independence", "ar1"}
        For ``"gee"``.
    profile : bool
        Profile-likelihood intervals for the SDs and correlations of Laplace/AGQ/ML/REML fits
        (a few seconds each); otherwise their intervals are NaN.
    marginal : bool
        With ``"gee"``, add the marginalized fixed effects of the AGQ (else Laplace) fit and
        of the posterior (see the module docstring).
    ci : float
        Interval probability for every method.
    report : callable, optional
        Called with a one-line message as each method starts and ends (e.g. ``print``;
        the CLI uses it to show progress besides the NUTS progress bar).
    **method_options
        Per-method options as dicts, passed through: ``nuts={"target_accept": 0.95}``,
        ``laplace={"maxiter": 5000}``, ``gee={"correlation": "ar1"}``.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        Before anything is fitted: an unknown or repeated method, ``nagq`` or ``ci`` out of range.
    TypeError
        An unexpected keyword argument, or per-method options that are not a dict.

    Examples
    --------
    >>> import bayesglmm as bg
    >>> model = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                 bg.datasets.load("cbpp"), family="binomial")
    >>> cmp = bg.compare(model, draws=500, random_seed=1)      # doctest: +SKIP
    >>> cmp.wide()                                              # doctest: +SKIP
    """
    methods = _parse_methods(methods, nagq)
    check_ci(ci)
    extra = _route(method_options)
    results, skipped, failed, frames = {}, {}, {}, []
    say = report or (lambda message: None)
    nuts_options = dict(draws=draws, tune=tune, chains=chains, random_seed=random_seed, progressbar=progressbar,
                        diagnose=False)
    fit_options = {"agq": {"nagq": nagq}, "pql": {"dispersion": dispersion}, "gee": {"correlation": correlation}}
    for method in methods:
        say(f"[{method}] fitting ...")
        if method == "nuts":
            run = run_method(model, method, priors=priors, read=functools.partial(_posterior_columns, ci=ci),
                             **{**nuts_options, **extra.get(method, {})})
        else:
            run = run_method(model, method, read=functools.partial(_fit_columns, ci=ci, profile=profile),
                             **{**fit_options.get(method, {}), **extra.get(method, {})})
        if run.status != "ok":  # skipped (cannot apply) or failed (applied and broke), with the reason
            (skipped if run.status == "skipped" else failed)[method] = run.reason
            say(f"[{method}] {run.status}: {run.reason}")
            frames.append(pd.DataFrame([{"method": method, "status": run.status, "note": run.reason,
                                         "seconds": run.seconds}]))
            continue
        fe, vc, converged, flags, interval, note = run.value
        if not np.all(np.isfinite(fe["estimate"].to_numpy(dtype=float))):  # NaN estimates are never "ok"
            why = "the fit returned NaN/inf estimates"
            failed[method] = why
            say(f"[{method}] failed: {why}")
            frames.append(pd.DataFrame([{"method": method, "status": "failed", "note": why, "seconds": run.seconds,
                                         "flags": "; ".join(flags)}]))
            continue
        say(f"[{method}] done in {run.seconds:.2f} s")
        for w in _findings(run.caught):  # what the fit warned is kept in the table and still shown
            warnings.warn(f"{method}: {w.message}", w.category, stacklevel=2)
        results[method] = run.result
        frame = _frame(fe, vc, method=method, interval=interval, seconds=run.seconds, converged=converged,
                       flags="; ".join(flags), status="ok", note=note)
        if method != "nuts":  # variance components: profile intervals, or none
            has = frame["kind"].ne("fixed") & frame["conf_low"].notna()
            frame.loc[frame["kind"].ne("fixed"), "interval"] = "none"
            frame.loc[has, "interval"] = f"{ci:.0%} profile likelihood"
        frames.append(frame)
    if marginal and "gee" in results:
        frames += _marginal_frames(results, ci, random_seed, skipped, failed)
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for c in LONG_COLUMNS:
        if c not in long.columns:
            long[c] = None
    long = long[list(LONG_COLUMNS) + [c for c in long.columns if c not in LONG_COLUMNS]]
    return Comparison(model, methods, results, skipped, long, ci, failed=failed)


def _parse_methods(methods, nagq) -> tuple:
    """``methods`` as a tuple (a string may list several, comma-separated), checked with ``nagq``."""
    if isinstance(methods, str):  # "laplace" or "nuts,laplace,gee"
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = tuple(methods)
    repeated = list(dict.fromkeys(m for m in methods if methods.count(m) > 1))
    if repeated:
        raise ValueError(f"methods lists {', '.join(map(repr, repeated))} more than once: each method is fitted "
                         "once and is one column of the table; drop the repeat")
    if nagq is not None and (not isinstance(nagq, (int, np.integer)) or isinstance(nagq, bool) or nagq < 1):
        raise ValueError(f"nagq must be a positive integer, got {nagq!r}")
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown or methods}; available: {', '.join(ALL_METHODS)}")
    return methods


def _posterior_columns(result, ci):
    """A posterior's tables and columns of the comparison: (fe, vc, converged, flags, interval, note)."""
    diag = result.diagnostics(warn=False)
    fe, vc = result.fixed_effects(ci), result.variance_components(ci)
    flags = [f"divergences={diag['divergences']}", f"max_rhat={diag['max_r_hat']:.3f}",
             f"min_ess_bulk={diag['min_ess_bulk']:.0f}"]
    if any(f.kind == "treedepth" for f in result.flags):
        flags.append(f"max_treedepth={diag['max_treedepth_share']:.0%}")
    flags += [str(f) for f in result.flags if f.kind == "quadrature"]  # marginalize=True
    return fe, vc, bool(diag["ok"]), flags, f"{ci:.0%} equal-tailed", NOTES["nuts"]


def _fit_columns(result, ci, profile):
    """A point fit's tables and columns of the comparison: (fe, vc, converged, flags, interval, note);
    profile intervals for the SDs where the fit has them (``can_profile``)."""
    method, family = result.method, result.model.family
    fe = result.fixed_effects(ci)
    vc = result.variance_components(ci, profile=profile and result.can_profile)  # a GEE fit's is empty
    interval = f"{ci:.0%} Wald" + (" (robust)" if method == "gee" else "")
    if family.has_scale and method in ("laplace", "agq", "pql"):
        note = "Gaussian model: exact, the ML LMM (as glmer hands gaussian models to lmer)"
    else:
        note = NOTES[method] + (f", nagq={result.nagq}" if method == "agq" else "") + (
            f", working correlation {result.correlation} (alpha={result.alpha:.3f})" if method == "gee" else "")
    if np.isfinite(getattr(result, "loglik", np.nan)):
        note += f"; loglik {result.loglik:.3f}, AIC {result.aic:.2f}"
    return fe, vc, bool(result.converged), _fit_flags(result), interval, note


def _marginal_frames(results, ci, random_seed, skipped, failed) -> list:
    """The marginalized fixed effects of the AGQ (else Laplace) fit and of the posterior, to compare with
    GEE's; a marginalization that cannot apply or fails is entered in ``skipped`` or ``failed``."""
    frames = []
    ml = next((m for m in ("agq", "laplace") if m in results), None)  # one ML source: AGQ's is the better
    # likelihood (Laplace is biased with large SDs and small clusters, e.g. ohio)
    for method in [m for m in (ml, "nuts") if m in results]:
        t0 = time.perf_counter()
        try:
            if method == "nuts":
                fe = results[method].marginal_fixed_effects(ci=ci)
                interval = f"{ci:.0%} equal-tailed"
            else:
                fe = results[method].marginal_fixed_effects(random_seed=random_seed, ci=ci)
                interval = f"{ci:.0%} Wald (simulated SEs)"
        except (ValueError, FloatingPointError) as err:
            if isinstance(err, NotApplicableError):
                skipped[f"{method} (marginal)"] = f"marginalization cannot apply: {err}"
            else:
                failed[f"{method} (marginal)"] = f"marginalization failed: {type(err).__name__}: {err}"
            continue
        frames.append(_frame(fe, None, interval=interval, seconds=time.perf_counter() - t0,
                             converged=True, flags="", status="ok", note=NOTES["marginal"]))
    return frames
