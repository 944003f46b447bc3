"""Ranking the levels of a grouping factor by their predicted random effects (BLUPs).

"Which children are most sensitive to pollution?" is a question about one random
slope's predicted values: :func:`rank_levels` sorts the levels by it, with intervals,
and — for a posterior — the probability that each level's effect exceeds a threshold
and the posterior interval of its rank (ranks are uncertain: a level ranked first by
its mean may rank tenth in many draws).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .results import check_ci

__all__ = ["rank_levels"]


def _block(design, group, term):
    groups = design.groups
    if group is None:
        if len(groups) != 1:
            raise ValueError(f"the model has grouping factors {', '.join(map(repr, groups))}: pass group=")
        group = groups[0]
    blocks = [b for b in design.random if b.group == group]
    if not blocks:
        raise ValueError(f"group {group!r} is not a grouping factor of the model; available: "
                         f"{', '.join(map(repr, groups))}")
    terms = [t for b in blocks for t in b.terms]
    term = terms[0] if term is None else term
    for b in blocks:
        if term in b.terms:
            return b, b.terms.index(term)
    raise ValueError(f"term {term!r} has no random effect by {group!r}; available: {', '.join(map(repr, terms))}")


def rank_levels(result, term: str | None = None, group: str | None = None, threshold: float = 0.0,
                ci: float = 0.95, descending: bool = True) -> pd.DataFrame:
    """Levels sorted by their predicted random effect for ``term``.

    Parameters
    ----------
    result : Posterior or MLFit
        A posterior (posterior means, intervals, P(effect > threshold), rank intervals)
        or an ML/PQL fit (conditional modes with conditional-SE intervals).
    term : str, optional
        The random term, e.g. ``"(Intercept)"`` or ``"pollution"`` (default: the group's first).
    group : str, optional
        The grouping factor (default: the model's only one).
    threshold : float
        The ``c`` of ``prob_above`` = P(effect > c) (posterior only).
    ci : float
    descending : bool
        Largest effect first (rank 1).

    Returns
    -------
    pandas.DataFrame
        ``rank``, ``group``, ``term``, ``level``, ``estimate``, ``std_error``, ``conf_low``,
        ``conf_high``, ``method``; a posterior adds ``prob_above``, ``rank_low`` and
        ``rank_high`` (equal-tailed ``ci`` interval of the level's rank over the draws).
        Draw it with :func:`bayesglmm.plots.caterpillar`.
    """
    if not hasattr(result, "model") or not hasattr(result, "random_effects"):
        raise TypeError(f"rank_levels() takes a Posterior or an MLFit, got {type(result).__name__}")
    if getattr(result, "population_averaged", False):
        raise ValueError("a GEE fit has no random effects to rank")
    check_ci(ci)
    block, t = _block(result.model.design, group, term)
    term = block.terms[t]
    if hasattr(result, "idata"):
        draws = result.draws(block.label)[..., t]  # (chain, draw, level)
        flat = draws.reshape(-1, draws.shape[-1])
        alpha = (1 - ci) / 2
        sign = -1.0 if descending else 1.0
        ranks = np.argsort(np.argsort(sign * flat, axis=1), axis=1) + 1  # rank of each level in each draw
        table = pd.DataFrame({
            "group": block.group, "term": term, "level": list(block.levels), "estimate": flat.mean(axis=0),
            "std_error": flat.std(axis=0, ddof=1), "conf_low": np.quantile(flat, alpha, axis=0),
            "conf_high": np.quantile(flat, 1 - alpha, axis=0), "method": "nuts",
            "prob_above": (flat > threshold).mean(axis=0),
            "rank_low": np.quantile(ranks, alpha, axis=0, method="lower"),
            "rank_high": np.quantile(ranks, 1 - alpha, axis=0, method="higher"),
        })
    else:
        re = result.random_effects(ci)
        table = re[(re["group"] == block.group) & (re["term"] == term)].reset_index(drop=True)
    table = table.sort_values("estimate", ascending=not descending, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table
