"""One printed summary for every result, read through the result protocol.

``print(result)`` on a :class:`~bayesglmm.bayes.posterior.Posterior`, an
:class:`~bayesglmm.frequentist.MLFit` (Laplace, AGQ, ML, REML, PQL) or a
:class:`~bayesglmm.frequentist.gee.GEEFit` reads like lme4's ``summary(glmer(...))``:
the method, family and link, formula, fit criteria where they exist, the numbers of
observations and of levels per grouping factor, the random-effects table (variance and SD,
correlations), the fixed-effects table and the flags. ``_repr_html_`` shows the same in a
notebook. The text is built only from the protocol (``fixed_effects()``,
``variance_components()``, ``flags``, ``model``), so a new result type gets it for free.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .results import is_residual

__all__ = ["summary_text", "summary_html", "model_text", "model_html", "StudyDisplay"]

_TITLES = {
    "laplace": "Generalized linear mixed model fit by maximum likelihood (Laplace approximation)",
    "agq": "Generalized linear mixed model fit by maximum likelihood (adaptive Gauss-Hermite quadrature)",
    "ml": "Linear mixed model fit by maximum likelihood",
    "reml": "Linear mixed model fit by REML",
    "pql": "Generalized linear mixed model fit by penalized quasi-likelihood (PQL: no likelihood)",
    "gee": "Marginal model fit by GEE (population-averaged coefficients, robust SEs)",
    "nuts": "Bayesian generalized linear mixed model: posterior sampled by NUTS",
}


def _groups_line(design) -> str:
    groups = {}
    for b in design.random:
        groups.setdefault(b.group, b.n_levels)
    return f"Number of obs: {design.nobs}" + (", groups:  " + "; ".join(f"{g}, {n}" for g, n in groups.items())
                                              if groups else "")


def _header(result) -> list[str]:
    model = result.model
    fam = model.family
    title = _TITLES.get(result.method, result.method)
    if result.method == "agq":
        title += f", nAGQ = {result.nagq}"
    lines = [title, f" Family: {fam.name}  ( {fam.link.name} )", f"Formula: {model.formula}"]
    ll = getattr(result, "loglik", None)
    if ll is not None and np.isfinite(ll):
        crit = "REML criterion" if result.method == "reml" else "deviance"
        lines.append(f"\n     AIC      BIC   logLik  {crit}")
        lines.append(f"{result.aic:8.1f} {result.bic:8.1f} {ll:8.1f} {-2 * ll:8.1f}")
    return lines


def _random_table(vc: pd.DataFrame, bayes: bool) -> pd.DataFrame | None:
    if vc is None or vc.empty:
        return None
    sd = vc[vc["kind"] == "sd"].assign(residual=is_residual(vc)[(vc["kind"] == "sd").to_numpy()])
    rows = []
    for r in sd.itertuples():
        row = {"Groups": r.group, "Name": "" if r.residual else r.term}
        if bayes:  # the square of a posterior mean is not the posterior mean of the variance: SDs only
            row.update({"Std.Dev.": r.estimate, "SD": r.std_error, "lower": r.conf_low, "upper": r.conf_high})
        else:
            row.update({"Variance": r.estimate ** 2, "Std.Dev.": r.estimate})
        rows.append(row)
    frame = pd.DataFrame(rows)
    corr = vc[vc["kind"] == "corr"]
    if len(corr):
        frame["Corr"] = ""
        for r in corr.itertuples():
            i = frame.index[(frame["Groups"] == r.group) & (frame["Name"] == r.term2)]
            frame.loc[i, "Corr"] = (frame.loc[i, "Corr"] + f" {r.estimate:.2f}").str.strip()
    return frame


def _fixed_table(result, fe: pd.DataFrame) -> pd.DataFrame:
    if result.method == "nuts":
        out = fe[["term", "estimate", "std_error", "conf_low", "conf_high", "r_hat", "ess_bulk"]].copy()
        out.columns = ["", "Mean", "SD", "lower", "upper", "R-hat", "ESS"]
        out["ESS"] = out["ESS"].round().astype("Int64")
    else:
        z = fe["estimate"] / fe["std_error"]
        from scipy import stats

        out = pd.DataFrame({"": fe["term"], "Estimate": fe["estimate"], "Std. Error": fe["std_error"],
                            "z value": z, "Pr(>|z|)": 2 * stats.norm.sf(np.abs(z))})
        if result.model.family.has_scale:
            out = out.rename(columns={"z value": "t value"}).drop(columns="Pr(>|z|)")
    out = out.set_index("")
    out.index.name = None
    return out


def _parts(result):
    fe = result.fixed_effects()
    vc = result.variance_components()
    return fe, _random_table(vc, result.method == "nuts"), _fixed_table(result, fe)


def _footer(result) -> list[str]:
    lines = []
    if result.method == "nuts":
        d = result.diagnostics(warn=False)
        post = result.idata["posterior"]
        lines.append(f"Sampling: {post.sizes['chain']} chains x {post.sizes['draw']} draws; {d['divergences']} "
                     f"divergences, max R-hat {d['max_r_hat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}")
    elif hasattr(result, "converged"):
        lines.append(f"Converged: {result.converged}" + (f" ({result.message})" if getattr(result, "message", "")
                                                        and not result.converged else ""))
    if result.method == "gee":
        lines.append(f"Working correlation: {result.correlation} (alpha = {result.alpha:.4f})")
    flags = list(result.flags)
    lines += [f"flag {f}" for f in flags] or ["flags: none"]
    return lines


def summary_text(result, digits: int = 4) -> str:
    """The lme4-style printed summary of any result (see the module docstring)."""
    fe, rand, fixed = _parts(result)
    lines = _header(result) + ["", _groups_line(result.model.design)]
    with pd.option_context("display.width", 120, "display.max_columns", 20, "display.precision", digits):
        if rand is not None:
            lines += ["", "Random effects" + (" (posterior mean of the SD, SD, 95% interval):"
                                              if result.method == "nuts" else ":"),
                      rand.to_string(index=False)]
        elif result.method == "gee":
            lines += ["", "Random effects: none (marginal model)"]
        lines += ["", "Fixed effects" + (" (posterior mean, SD, 95% interval):" if result.method == "nuts" else ":"),
                  fixed.to_string()]
    lines += [""] + _footer(result)
    return "\n".join(lines)


def summary_html(result, digits: int = 4) -> str:
    """The same summary as HTML tables, for a notebook's ``_repr_html_``."""
    fe, rand, fixed = _parts(result)
    esc = html.escape
    head = _header(result)
    out = [f"<p><b>{esc(head[0])}</b><br>{'<br>'.join(esc(h) for h in head[1:3])}</p>"]
    if len(head) > 3:
        out.append(f"<pre>{esc(chr(10).join(head[3:]).strip())}</pre>")
    out.append(f"<p>{esc(_groups_line(result.model.design))}</p>")
    fmt = f"{{:.{digits}g}}".format
    if rand is not None:
        out.append("<p><b>Random effects</b></p>" + rand.to_html(index=False, float_format=fmt))
    out.append("<p><b>Fixed effects</b></p>" + fixed.to_html(float_format=fmt))
    out.append("<p>" + "<br>".join(esc(x) for x in _footer(result)) + "</p>")
    return "\n".join(out)


def model_text(model) -> str:
    """A model before fitting: formula, family, observations, grouping factors, priors."""
    d = model.design
    lines = [f"GLMM: {model.formula}", f" Family: {model.family.name}  ( {model.family.link.name} )",
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
        flags = [f"flag {f}" for f in self.flags] or ["flags: none"]
        return "\n".join(self._title() + ["", body, ""] + flags)

    def _repr_html_(self):
        head = "<br>".join(html.escape(x) for x in self._title())
        flags = "<br>".join(html.escape(str(f)) for f in self.flags) or "flags: none"
        return (f"<p>{head}</p>" + self._display_table().to_html(index=False, float_format="{:.4g}".format)
                + f"<p>{flags}</p>")
