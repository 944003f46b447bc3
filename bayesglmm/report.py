"""One printed summary for every result, read through the result protocol.

``print(result)`` on a :class:`~bayesglmm.bayes.posterior.Posterior`, an
:class:`~bayesglmm.frequentist.MLFit` (Laplace, AGQ, ML, REML, PQL) or a
:class:`~bayesglmm.frequentist.gee.GEEFit` reads like lme4's ``summary(glmer(...))``:
the method, family and link, formula, fit criteria where they exist, the numbers of
observations and of levels per grouping factor, the random-effects table (variance and SD,
correlations), the fixed-effects table and the flags. ``_repr_html_`` shows the same in a
notebook. Both belong to :class:`ResultDisplay`, the base of every result: the text is built
from the result protocol (:class:`~bayesglmm.results.Result`: ``fixed_effects()``,
``variance_components()``, ``flags``, ``model``) and a few hooks by which a result names its title,
criteria, tables and status lines, so that nothing here depends on which method made it.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .results import is_residual

__all__ = ["display_table", "summary_text", "summary_html", "model_text", "model_html", "ResultDisplay",
           "StudyDisplay", "criteria_lines", "variance_table", "posterior_sd_table", "wald_table", "posterior_table"]


#: columns shown with three decimals (a convergence diagnostic: 1.004, not 1.00436)
_DECIMAL_COLUMNS = {"r_hat": 3, "R-hat": 3}
#: columns shown as whole numbers (effective sample sizes)
_INTEGER_COLUMNS = {"ess_bulk", "ess_tail", "ESS", "ess"}


def _number(x, digits: int) -> str:
    """``x`` to ``digits`` significant digits, in fixed notation from 1e-4 up (an estimate of 1234.5 is
    ``1235``, not ``1.234e+03``), in scientific notation below (a p-value of 3.1e-07)."""
    if pd.isna(x):
        return ""
    x = float(x)
    if x == 0 or not np.isfinite(x):
        return f"{x:g}"
    if abs(x) < 1e-4:
        return f"{x:.{digits}g}"
    magnitude = int(np.floor(np.log10(abs(float(f"{x:.{digits - 1}e}")))))  # after rounding: 0.99996 is 1.000
    return f"{x:.{max(digits - 1 - magnitude, 0)}f}"


def display_table(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A tidy table formatted for reading: what a notebook or the HTML summaries show of one.

    The numbers become text: ``digits`` significant digits (fixed notation, scientific only below
    1e-4), R-hat with three decimals, effective sample sizes as whole numbers; NaN an empty cell. The
    columns with no value at all (all None or NaN, e.g. ``term2`` in ``variance_components()`` of a
    model without correlations) are left out. The table given is not changed: compute on it, show this.

    Parameters
    ----------
    frame : pandas.DataFrame
        Any table, e.g. ``fixed_effects()``, ``variance_components()``, ``summary()`` or
        :func:`bayesglmm.lrt`'s.
    digits : int, default 4
        Significant digits of the numbers (other than R-hat and ESS).

    Returns
    -------
    pandas.DataFrame
        A new table of text cells with the same index, for display only (``print`` it, or let the
        notebook show it).

    Examples
    --------
    >>> import pandas as pd
    >>> from bayesglmm.report import display_table
    >>> vc = pd.DataFrame({"group": ["herd"], "term": ["(Intercept)"], "term2": [None],
    ...                    "estimate": [0.6423517], "r_hat": [1.00213], "ess_bulk": [1126.761041]})
    >>> display_table(vc)
      group         term estimate  r_hat ess_bulk
    0  herd  (Intercept)   0.6424  1.002     1127
    """
    if digits < 1:
        raise ValueError(f"digits must be at least 1; got {digits!r}")
    keep = [c for c in frame.columns if not frame[c].isna().all()] if len(frame) else list(frame.columns)
    out = frame[keep].copy()
    for c in out.columns:
        col = out[c]
        if col.dtype == bool or not (pd.api.types.is_numeric_dtype(col) or col.map(_is_number).all()):
            continue
        name = c[-1] if isinstance(c, tuple) else c  # ("full", "ess_bulk") in a concatenated table
        if name in _INTEGER_COLUMNS:
            out[c] = col.map(lambda x: "" if pd.isna(x) else f"{float(x):.0f}")
        elif name in _DECIMAL_COLUMNS:
            out[c] = col.map(lambda x, d=_DECIMAL_COLUMNS[name]: "" if pd.isna(x) else f"{float(x):.{d}f}")
        elif pd.api.types.is_integer_dtype(col):
            out[c] = col.map(lambda x: "" if pd.isna(x) else str(int(x)))
        else:
            out[c] = col.map(lambda x: _number(x, digits))
    return out


def _is_number(x) -> bool:
    return x is None or (isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool))


def _groups_line(design) -> str:
    groups = {}
    for b in design.random:
        groups.setdefault(b.group, b.n_levels)
    return f"Number of obs: {design.nobs}" + (", groups:  " + "; ".join(f"{g}, {n}" for g, n in groups.items())
                                              if groups else "")


def _header(result) -> list[str]:
    fam = result.model.family
    return ([result._summary_title(), f" Family: {fam.label(getattr(result, 'dispersion', None))}  ( {fam.link.name} )",
             f"Formula: {result.model.formula}"] + result._summary_criteria())


def criteria_lines(aic: float, bic: float, loglik: float, criterion: str = "deviance") -> list[str]:
    """The fit criteria under a summary's formula, as lme4 prints them: AIC, BIC, the log-likelihood and
    ``criterion`` (the deviance −2 logLik, or its REML counterpart) over their values."""
    return [f"\n     AIC      BIC   logLik  {criterion}", f"{aic:8.1f} {bic:8.1f} {loglik:8.1f} {-2 * loglik:8.1f}"]


def _random_frame(vc: pd.DataFrame, spread) -> pd.DataFrame | None:
    """One row per SD of ``vc`` (``spread(row)``: its value columns), the correlations in ``Corr``."""
    if vc is None or vc.empty:
        return None
    sd = vc[vc["kind"] == "sd"].assign(residual=is_residual(vc)[(vc["kind"] == "sd").to_numpy()])
    frame = pd.DataFrame([{"Groups": r.group, "Name": "" if r.residual else r.term, **spread(r)}
                          for r in sd.itertuples()])
    corr = vc[vc["kind"] == "corr"]
    if len(corr):
        frame["Corr"] = ""
        for r in corr.itertuples():
            i = frame.index[(frame["Groups"] == r.group) & (frame["Name"] == r.term2)]
            frame.loc[i, "Corr"] = (frame.loc[i, "Corr"] + f" {r.estimate:.2f}").str.strip()
    return frame


def variance_table(vc: pd.DataFrame) -> pd.DataFrame | None:
    """A point fit's random effects as lme4 prints them: ``Groups``, ``Name``, ``Variance``, ``Std.Dev.``
    (and ``Corr``), from ``variance_components()``; None without any."""
    return _random_frame(vc, lambda r: {"Variance": r.estimate ** 2, "Std.Dev.": r.estimate})


def posterior_sd_table(vc: pd.DataFrame) -> pd.DataFrame | None:
    """A posterior's random effects: the posterior mean of each SD (``Std.Dev.``), its posterior SD and
    interval (and ``Corr``). SDs only: the square of a posterior mean is not the posterior mean of the
    variance."""
    return _random_frame(vc, lambda r: {"Std.Dev.": r.estimate, "SD": r.std_error, "lower": r.conf_low,
                                        "upper": r.conf_high})


def _indexed(out: pd.DataFrame) -> pd.DataFrame:
    out = out.set_index("")
    out.index.name = None
    return out


def wald_table(fe: pd.DataFrame, t_values: bool = False) -> pd.DataFrame:
    """A point fit's fixed effects as lme4 prints them: estimate, SE, z value and Pr(>|z|); with
    ``t_values`` (a model with a scale parameter) the t value and no p-value, as lmer."""
    from scipy import stats

    z = fe["estimate"] / fe["std_error"]
    out = pd.DataFrame({"": fe["term"], "Estimate": fe["estimate"], "Std. Error": fe["std_error"],
                        "z value": z, "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))})
    if t_values:
        out = out.rename(columns={"z value": "t value"}).drop(columns="Pr(>|z|)")
    return _indexed(out)


def posterior_table(fe: pd.DataFrame) -> pd.DataFrame:
    """A posterior's fixed effects: mean, SD, interval, R-hat and bulk ESS."""
    out = fe[["term", "estimate", "std_error", "conf_low", "conf_high", "r_hat", "ess_bulk"]].copy()
    out.columns = ["", "Mean", "SD", "lower", "upper", "R-hat", "ESS"]
    out["ESS"] = out["ESS"].round().astype("Int64")
    return _indexed(out)


def _parts(result):
    fe = result.fixed_effects()
    return result._summary_random(result.variance_components()), result._summary_fixed(fe)


def _flag_lines(flags) -> list[str]:
    return [f"flag {f}" for f in flags] or ["flags: none"]


def _footer(result) -> list[str]:
    return result._summary_status() + _flag_lines(result.flags)


def summary_text(result, digits: int = 4) -> str:
    """The lme4-style printed summary of any result (see the module docstring)."""
    rand, fixed = _parts(result)
    lines = _header(result) + ["", _groups_line(result.model.design)]
    with pd.option_context("display.width", 120, "display.max_columns", 20, "display.precision", digits):
        if rand is not None:
            lines += ["", "Random effects" + result._random_caption, rand.to_string(index=False)]
        elif result._no_random_text:
            lines += ["", result._no_random_text]
        lines += ["", "Fixed effects" + result._fixed_caption, fixed.to_string()]
    lines += [""] + _footer(result)
    return "\n".join(lines)


def summary_html(result, digits: int = 4) -> str:
    """The same summary as HTML tables, for a notebook's ``_repr_html_``, the numbers as
    :func:`display_table` shows them."""
    rand, fixed = _parts(result)
    esc = html.escape
    head = _header(result)
    out = [f"<p><b>{esc(head[0])}</b><br>{'<br>'.join(esc(h) for h in head[1:3])}</p>"]
    if len(head) > 3:
        out.append(f"<pre>{esc(chr(10).join(head[3:]).strip())}</pre>")
    out.append(f"<p>{esc(_groups_line(result.model.design))}</p>")
    if rand is not None:
        out.append("<p><b>Random effects</b></p>" + display_table(rand, digits).to_html(index=False))
    out.append("<p><b>Fixed effects</b></p>" + display_table(fixed, digits).to_html())
    out.append("<p>" + "<br>".join(esc(x) for x in _footer(result)) + "</p>")
    return "\n".join(out)


class ResultDisplay:
    """``print(result)`` (:func:`summary_text`) and ``_repr_html_`` (:func:`summary_html`) of every
    fit result: the base of :class:`~bayesglmm.bayes.posterior.Posterior`,
    :class:`~bayesglmm.frequentist.MLFit` and :class:`~bayesglmm.frequentist.gee.GEEFit`.

    Besides the protocol (:class:`~bayesglmm.results.Result`) a result names, through these hooks
    (defaults here, for a point fit), what its summary shows:

    ``_summary_title()``
        The first line: what fitted the model (default: ``method``).
    ``_summary_criteria()``
        Lines under the formula, e.g. :func:`criteria_lines` (default: none).
    ``_summary_random(vc)``, ``_summary_fixed(fe)``
        The tables shown of ``variance_components()`` and ``fixed_effects()`` (default:
        :func:`variance_table`; :func:`wald_table`, with t values where the family has a scale).
    ``_random_caption``, ``_fixed_caption``
        What follows "Random effects" and "Fixed effects" in the text (default ``":"``).
    ``_no_random_text``
        The line shown instead of an empty random-effects table (default: none).
    ``_summary_status()``
        The lines above the flags (default: whether the fit converged, and the optimizer's message
        when not).
    """

    _random_caption = ":"
    _fixed_caption = ":"
    _no_random_text = None

    def __str__(self):
        return summary_text(self)

    def _repr_html_(self):
        return summary_html(self)

    def _summary_title(self) -> str:
        return self.method

    def _summary_criteria(self) -> list[str]:
        return []

    def _summary_random(self, vc: pd.DataFrame) -> pd.DataFrame | None:
        return variance_table(vc)

    def _summary_fixed(self, fe: pd.DataFrame) -> pd.DataFrame:
        return wald_table(fe, t_values=self.model.family.has_scale)

    def _summary_status(self) -> list[str]:
        message = f" ({self.message})" if getattr(self, "message", "") and not self.converged else ""
        return [f"Converged: {self.converged}{message}"]


def model_text(model) -> str:
    """A model before fitting: formula, family, observations, grouping factors, priors."""
    d = model.design
    lines = [f"GLMM: {model.formula}", f" Family: {model.family.label()}  ( {model.family.link.name} )",
             _groups_line(d), f"Fixed effects: {', '.join(d.fixed_names)}"]
    for b in d.random:
        kind = "correlated" if b.has_correlation else ("" if b.n_terms == 1 else "uncorrelated")
        lines.append(f"Random: ({' + '.join(b.terms)} | {b.group}) {kind}".rstrip())
    return "\n".join(lines)


def model_html(model) -> str:
    """The model's description and its prior table, for a notebook."""
    esc = html.escape
    body = "<br>".join(esc(x) for x in model_text(model).splitlines())
    try:
        priors = model.priors.table().to_html(index=False)
    except Exception:  # the prior table is a nicety: never let display fail
        priors = ""
    return f"<p>{body}</p>" + (f"<p><b>Priors</b></p>{priors}" if priors else "")



class StudyDisplay:
    """``print`` and ``_repr_html_`` for the study results (simulation study, bootstrap LRT,
    pooling, naive vs clustered, prior sensitivity), from their ``_title()`` (lines),
    ``_display_table()`` (default: ``table()``) and ``flags``."""

    def _display_table(self) -> pd.DataFrame:
        return self.table()

    def __str__(self):
        with pd.option_context("display.width", 160, "display.max_columns", 20, "display.precision", 4):
            body = self._display_table().to_string(index=False)
        return "\n".join(self._title() + ["", body, ""] + _flag_lines(self.flags))

    def _repr_html_(self):
        head = "<br>".join(html.escape(x) for x in self._title())
        flags = "<br>".join(html.escape(str(f)) for f in self.flags) or "flags: none"
        return (f"<p>{head}</p>" + display_table(self._display_table()).to_html(index=False)
                + f"<p>{flags}</p>")
