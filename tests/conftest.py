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
