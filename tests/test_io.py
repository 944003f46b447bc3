import gzip
import pickle

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg

from .conftest import _bundled


def _same_tables(a, b, names=("fixed_effects", "variance_components", "random_effects")):
    for name in names:
        pd.testing.assert_frame_equal(getattr(a, name)(), getattr(b, name)())


def test_posterior_round_trip(tmp_path, cbpp_comparison):
    post = cbpp_comparison.results["nuts"]
    path = bg.save(post, tmp_path / "post.bg")
    back = bg.load(path)
    assert type(back) is type(post)
    for name in ("beta", "1|herd_sd", "1|herd"):
        assert np.array_equal(back.draws(name), post.draws(name))
    _same_tables(post, back)
    assert back.model.formula == post.model.formula and back.model.family == post.model.family
    pd.testing.assert_frame_equal(back.model.design.data, post.model.design.data)
    pd.testing.assert_frame_equal(back.predict(), post.predict())
    assert back.diagnostics(warn=False) == post.diagnostics(warn=False)  # rebuilds the PyMC model


@pytest.mark.parametrize("name,method", [("cbpp", "laplace"), ("salamander", "laplace"), ("cbpp", "pql"),
                                         ("sleepstudy", "reml"), ("ohio", "gee"), ("bacteria", "agq")])
def test_fit_round_trip(tmp_path, name, method):
    fit = _bundled(name).fit(method)
    back = bg.load(bg.save(fit, tmp_path / "fit.bg"))
    if method == "gee":
        _same_tables(fit, back, ("fixed_effects",))
        assert back.alpha == fit.alpha and back.population_averaged
    else:
        _same_tables(fit, back)
        assert (back.converged, back.method, back.nagq) == (fit.converged, fit.method, fit.nagq)
        assert np.array_equal([getattr(back, "loglik", np.nan), getattr(back, "aic", np.nan)],
                              [getattr(fit, "loglik", np.nan), getattr(fit, "aic", np.nan)], equal_nan=True)
    pd.testing.assert_frame_equal(back.predict(), fit.predict())
    assert back.model.formula == fit.model.formula


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        bg.load(tmp_path / "missing.bg")
    (tmp_path / "text.bg").write_text("hello")
    with pytest.raises(ValueError, match="not a bayesglmm result file"):
        bg.load(tmp_path / "text.bg")
    with gzip.open(tmp_path / "other.bg", "wb") as fh:
        pickle.dump({"something": 1}, fh)
    with pytest.raises(ValueError, match="not a bayesglmm result file"):
        bg.load(tmp_path / "other.bg")
    with pytest.raises(TypeError, match="takes a Posterior, MLFit or GEEFit"):
        bg.save(pd.DataFrame(), tmp_path / "x.bg")
