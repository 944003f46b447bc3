"""Matplotlib figures: the comparison's forest plot and the caterpillar plot of ranked levels.

Every function returns the :class:`matplotlib.figure.Figure` (nothing is shown or saved).
The posterior predictive check is :meth:`bayesglmm.bayes.posterior.Posterior.plot_ppc` (ArviZ).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["forest", "caterpillar", "elpd_comparison"]

_TITLES = {"fixed": "Fixed effects", "sd": "Random-effect SDs", "corr": "Correlations"}


def forest(long: pd.DataFrame, methods, kinds=("fixed", "sd"), title: str | None = None):
    """Forest plot of a comparison's long table: a row per parameter, a colour per method.

    Parameters
    ----------
    long : pandas.DataFrame
        Rows of :meth:`Comparison.table` (``parameter``, ``kind``, ``method``,
        ``estimate``, ``conf_low``, ``conf_high``).
    methods : sequence of str
        The methods to draw, in legend order.
    kinds : sequence of str
        One panel per kind present (``"fixed"``, ``"sd"``, ``"corr"``).
    """
    import matplotlib.pyplot as plt

    panels = [k for k in kinds if (long["kind"] == k).any()]
    if not panels:
        raise ValueError("nothing to plot: the table has no rows of kinds " + ", ".join(kinds))
    counts = [long.loc[long["kind"] == k, "parameter"].nunique() for k in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 1.8 + 0.45 * sum(counts) + 0.6 * len(panels)),
                             gridspec_kw={"height_ratios": counts}, squeeze=False)
    colours = plt.get_cmap("tab10")
    width = 0.8 / max(len(methods), 1)
    for ax, kind in zip(axes[:, 0], panels):
        rows = long[long["kind"] == kind]
        params = list(dict.fromkeys(rows["parameter"]))
        ypos = {p: len(params) - 1 - i for i, p in enumerate(params)}
        for m, method in enumerate(methods):
            sub = rows[rows["method"] == method]
            if sub.empty:
                continue
            y = np.array([ypos[p] for p in sub["parameter"]]) + 0.4 - width * (m + 0.5)
            est = sub["estimate"].to_numpy(dtype=float)
            lo, hi = sub["conf_low"].to_numpy(dtype=float), sub["conf_high"].to_numpy(dtype=float)
            has = np.isfinite(lo) & np.isfinite(hi)
            ax.hlines(y[has], lo[has], hi[has], color=colours(m % 10), lw=1.6)
            ax.plot(est, y, "o", color=colours(m % 10), ms=4.5, label=method)
        ax.set_yticks([ypos[p] for p in params], params)
        ax.set_ylim(-0.6, len(params) - 0.4)
        if kind == "fixed":
            ax.axvline(0.0, color="0.6", lw=0.8, ls="--")
        ax.set_title(_TITLES.get(kind, kind), loc="left", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", fontsize=8, frameon=False, ncols=min(len(labels), 4))
    if title:
        fig.suptitle(title, x=0.02, ha="left", fontsize=10)
    bottom = (0.75 if len(labels) > 4 else 0.45) / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, 0.97 if title else 1))
    return fig


def caterpillar(ranked: pd.DataFrame, threshold: float | None = 0.0, title: str | None = None):
    """Caterpillar plot of :func:`bayesglmm.rank_levels`: each level's effect and interval, in rank order.

    Parameters
    ----------
    ranked : pandas.DataFrame
        The table :func:`~bayesglmm.rank_levels` returns.
    threshold : float, optional
        A reference line (the ``c`` of P(effect > c)).
    """
    import matplotlib.pyplot as plt

    n = len(ranked)
    fig, ax = plt.subplots(figsize=(6.5, 1.0 + 0.22 * n))
    y = np.arange(n)[::-1]
    ax.hlines(y, ranked["conf_low"].to_numpy(dtype=float), ranked["conf_high"].to_numpy(dtype=float),
              color="tab:blue", lw=1.2)
    ax.plot(ranked["estimate"].to_numpy(dtype=float), y, "o", color="tab:blue", ms=3.5)
    ax.set_yticks(y, [str(v) for v in ranked["level"]], fontsize=7 if n > 30 else 9)
    if threshold is not None:
        ax.axvline(threshold, color="0.6", lw=0.8, ls="--")
    first = ranked.iloc[0]
    ax.set_xlabel(f"{first['term']} | {first['group']} ({first['method']})")
    ax.set_title(title or "Levels ranked by their predicted random effect", loc="left", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def elpd_comparison(table: pd.DataFrame, title: str | None = None):
    """The models of :func:`bayesglmm.loo_compare` by their ELPD: each model's ``elpd`` with ±1 ``se`` (open
    circles) and, below the best, its difference to the best with ±1 ``dse`` (the SE of the difference,
    which is what ranks two models: their own SEs share most of their error), as ArviZ's ``plot_compare``."""
    import matplotlib.pyplot as plt

    n = len(table)
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.45 * n))
    y = np.arange(n)[::-1].astype(float)
    elpd = table["elpd"].to_numpy(dtype=float)
    ax.errorbar(elpd, y, xerr=table["se"].to_numpy(dtype=float), fmt="o", mfc="white", color="tab:blue",
                label="elpd ± se")
    best = elpd[0]
    diff = best + table["elpd_diff"].to_numpy(dtype=float) * np.where(table["rank"].to_numpy() == 0, 0.0, -1.0)
    ax.errorbar(diff[1:], y[1:] - 0.25, xerr=table["dse"].to_numpy(dtype=float)[1:], fmt="^", color="0.4",
                label="difference to the best ± its se")
    ax.axvline(best, color="0.6", lw=0.8, ls="--")
    ax.set_yticks(y, [str(v) for v in table.index])
    ax.set_xlabel(f"ELPD ({table.attrs.get('by', 'LOO')})")
    ax.set_title(title or "Models ranked by leave-one-out ELPD", loc="left", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
