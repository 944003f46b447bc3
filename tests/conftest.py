import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def small_df():
    """Tiny data set with a numeric and a categorical predictor and two grouping factors."""
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({
        "y": rng.integers(0, 2, n),
        "count": rng.poisson(3, n),
        "succ": rng.integers(0, 5, n),
        "size": np.full(n, 5),
        "x": rng.normal(size=n),
        "c": np.array(["a", "b", "c", "d"] * 10),
        "g": np.repeat([f"g{i}" for i in range(8)], 5),
        "h": np.tile(["h1", "h2", "h3", "h4", "h5"], 8),
        "t": rng.uniform(1, 3, n),
        "z": rng.normal(size=n) * 10 + 50,
    })


def _bundled(name):
    import bayesglmm as bg

    meta = bg.datasets.info(name)
    return bg.GLMM(meta.formula, bg.datasets.load(name), family=meta.family)


@pytest.fixture(scope="session")
def cbpp_model():
    """The cbpp reference model (binomial with trials, one grouping factor)."""
    return _bundled("cbpp")


@pytest.fixture(scope="session")
def cbpp_comparison(cbpp_model):
    """All five default methods on cbpp, with a short NUTS run (shared by several tests)."""
    import bayesglmm as bg

    return bg.compare(cbpp_model, draws=200, tune=300, chains=2, random_seed=7, progressbar=False)
