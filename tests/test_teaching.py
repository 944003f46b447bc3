"""Issue 9 (teaching part): pooling and shrinkage; naive vs clustered standard errors."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg

from .conftest import _bundled


def _unbalanced(seed=0):
    """Gaussian data, 30 groups of sizes 2 to 40, group intercepts N(0, 1), residual SD 2."""
    rng = np.random.default_rng(seed)
    sizes = np.linspace(2, 40, 30).astype(int)
    g = np.repeat([f"g{i}" for i in range(30)], sizes)
    alpha = rng.normal(0, 1, 30)
    x = rng.normal(size=len(g))
    y = 5 + 0.5 * x + np.repeat(alpha, sizes) + rng.normal(0, 2, len(g))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def test_partial_pooling_lies_between_and_small_groups_move_further():
    pool = bg.pooling(bg.GLMM("y ~ x + (1 | g)", _unbalanced()))
    t = pool.table()
    assert list(t.columns[:4]) == ["level", "n", "no_pooling", "partial_pooling"] and len(t) == 30
    lo = np.minimum(t["no_pooling"], pool.population)
    hi = np.maximum(t["no_pooling"], pool.population)
    assert np.all((lo - 1e-9 <= t["partial_pooling"]) & (t["partial_pooling"] <= hi + 1e-9))
    assert np.all((t["shrinkage"] > 0) & (t["shrinkage"] < 1))
    # for a Gaussian random intercept the shrinkage is sigma²/(sigma² + n·tau²): decreasing in n
    assert np.corrcoef(t["n"], t["shrinkage"])[0, 1] < -0.9
    small, large = t.loc[t["n"].idxmin(), "shrinkage"], t.loc[t["n"].idxmax(), "shrinkage"]
    assert small > 3 * large
    assert "population value" in str(pool) and "<table" in pool._repr_html_()
    assert pool.plot().axes and pool.flags == []


def test_pooling_checks_the_group():
    model = _bundled("salamander")
    with pytest.raises(ValueError, match="name the grouping factor"):
        bg.pooling(model)
    with pytest.raises(ValueError, match="got 'nope'"):
        bg.pooling(model, group="nope")


def test_naive_se_of_a_cluster_level_covariate_is_too_small():
    """ohio: smoke is constant within a child; its naive GLM SE is below the robust, GEE and GLMM ones."""
    res = bg.naive_vs_clustered(_bundled("ohio"))
    t = res.table().set_index(["term", "method"])
    assert bool(t.loc[("smoke", "glm (naive)"), "cluster_level"]) and not t.loc[("age", "gee"), "cluster_level"]
    naive = t.loc[("smoke", "glm (naive)"), "std_error"]
    for method in ("glm (cluster-robust)", "gee", "glmm"):
        assert t.loc[("smoke", method), "std_error"] > 1.3 * naive, method
    # the estimates of the marginal fits move little; the GLMM's conditional ones are larger (logit)
    assert abs(t.loc[("smoke", "gee"), "estimate"] - t.loc[("smoke", "glm (naive)"), "estimate"]) < naive
    assert abs(t.loc[("(Intercept)", "glmm"), "estimate"]) > 1.5 * abs(t.loc[("(Intercept)", "gee"), "estimate"])
    assert "glm (cluster-robust)" in str(res) and "<table" in res._repr_html_() and res.plot().axes


def test_pooling_with_a_random_slope_gives_the_intercept_slope_version():
    sleep = bg.datasets.load("sleepstudy")
    pool = bg.pooling(bg.GLMM("Reaction ~ Days + (Days | Subject)", sleep))
    t = pool.table()
    assert pool.slope == "Days" and {"no_pooling_slope", "partial_pooling_slope"} <= set(t.columns)
    # no pooling = each subject's own least-squares line
    first = sleep[sleep["Subject"] == t["level"].iloc[0]]
    slope, intercept = np.polyfit(first["Days"], first["Reaction"], 1)
    assert t["no_pooling_slope"].iloc[0] == pytest.approx(slope, rel=1e-6)
    assert t["no_pooling"].iloc[0] == pytest.approx(intercept, rel=1e-6)
    # partial pooling pulls the slopes toward the population slope
    spread_no = np.std(t["no_pooling_slope"] - pool.population_slope)
    spread_partial = np.std(t["partial_pooling_slope"] - pool.population_slope)
    assert spread_partial < 0.95 * spread_no
    ax = pool.plot().axes[0]
    assert "slope of 'Days'" in ax.get_ylabel()
