import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg


@pytest.fixture(scope="module")
def pollution():
    """30 children; wheeze ~ pollution with a random slope; child 'c07' is by far the most sensitive."""
    rng = np.random.default_rng(11)
    kids = [f"c{k:02d}" for k in range(30)]
    slopes = rng.normal(0, 0.2, 30)
    slopes[7] = 3.0
    rows = []
    for k, kid in enumerate(kids):
        x = rng.normal(size=60)
        p = 1 / (1 + np.exp(-(-0.5 + rng.normal(0, 0.5) + (0.4 + slopes[k]) * x)))
        rows += [{"child": kid, "pollution": xi, "wheeze": int(rng.random() < pi)} for xi, pi in zip(x, p)]
    return bg.GLMM("wheeze ~ pollution + (1 + pollution | child)", pd.DataFrame(rows), family="bernoulli")


def test_rank_levels_ml_fit_finds_the_most_sensitive(pollution):
    ranked = bg.rank_levels(pollution.fit("laplace"), term="pollution")
    assert ranked["level"].iloc[0] == "c07" and list(ranked["rank"]) == list(range(1, 31))
    assert ranked["estimate"].is_monotonic_decreasing
    assert (ranked["term"] == "pollution").all() and (ranked["conf_low"] < ranked["estimate"]).all()
    low = bg.rank_levels(pollution.fit("laplace"), term="pollution", descending=False)
    assert low["level"].iloc[-1] == "c07"


@pytest.mark.slow
def test_rank_levels_posterior_probabilities(pollution):
    post = pollution.sample(draws=250, tune=400, chains=2, random_seed=3, progressbar=False, diagnose=False)
    ranked = bg.rank_levels(post, term="pollution", threshold=0.0)
    assert ranked["level"].iloc[0] == "c07"
    assert ranked["prob_above"].iloc[0] > 0.98 and ranked["prob_above"].idxmax() == 0
    assert ranked["rank_low"].iloc[0] == 1 and ranked["rank_high"].iloc[0] < ranked["rank_high"].median()
    assert ranked["prob_above"].between(0, 1).all() and (ranked["rank_low"] <= ranked["rank_high"]).all()
    fig = bg.plots.caterpillar(ranked)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ticks = fig.axes[0].get_yticks()
    assert len(labels) == 30 and labels[int(np.argmax(ticks))] == "c07"  # rank 1 is drawn on top


def test_rank_levels_errors(pollution):
    fit = pollution.fit("laplace")
    with pytest.raises(ValueError, match="term 'age' has no random effect by 'child'"):
        bg.rank_levels(fit, term="age")
    with pytest.raises(ValueError, match="group 'school' is not a grouping factor"):
        bg.rank_levels(fit, group="school")
    meta = bg.datasets.info("salamander")
    sal = bg.GLMM(meta.formula, bg.datasets.load("salamander"), family=meta.family)
    with pytest.raises(ValueError, match="pass group="):
        bg.rank_levels(sal.fit("laplace"))
    with pytest.raises(TypeError, match="takes a Posterior or an MLFit, got DataFrame"):
        bg.rank_levels(pd.DataFrame())
    meta = bg.datasets.info("ohio")
    with pytest.raises(ValueError, match="GEE fit has no random effects"):
        bg.rank_levels(bg.GLMM(meta.formula, bg.datasets.load("ohio"), family=meta.family).fit("gee"))
