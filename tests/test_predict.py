import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg

from .conftest import _bundled


def test_mlfit_predict_on_fitting_data(cbpp_model):
    """η = Xβ̂ + Zb̂ on the fitting rows; the mean is its inverse logit (a per-trial probability)."""
    fit = cbpp_model.fit("laplace")
    d = cbpp_model.design
    b = np.concatenate([x.ravel() for x in fit.blups()])
    eta = d.offset + d.X @ fit.beta + d.Z() @ b
    assert fit.predict(kind="link")["estimate"].to_numpy() == pytest.approx(eta, abs=1e-12)
    assert fit.predict()["estimate"].to_numpy() == pytest.approx(1 / (1 + np.exp(-eta)), abs=1e-12)
    assert fit.predict(kind="link", random_effects=False)["estimate"].to_numpy() == pytest.approx(d.X @ fit.beta, abs=1e-12)
    re = fit.random_effects()
    assert b == pytest.approx(re["estimate"].to_numpy())


def test_predict_new_data_and_unseen_levels(cbpp_model):
    fit = cbpp_model.fit("laplace")
    data = bg.datasets.load("cbpp")
    new = pd.DataFrame({"herd": [data["herd"].iloc[0], "no-such-herd"], "period": ["1", "4"]})
    got = fit.predict(new, kind="link")["estimate"].to_numpy()
    expected = fit.predict(kind="link")["estimate"].iloc[0]
    assert got[0] == pytest.approx(expected, abs=1e-12)
    # an unseen herd: the population-level prediction
    assert got[1] == pytest.approx(fit.beta[0] + fit.beta[3], abs=1e-12)
    with pytest.raises(ValueError, match="not seen in fitting: 'no-such-herd'"):
        fit.predict(new, allow_new_levels=False)
    with pytest.raises(KeyError, match="'period' is not in the data"):
        fit.predict(new[["herd"]])
    with pytest.raises(ValueError, match="kind must be 'mean' or 'link'"):
        fit.predict(kind="response")
    with pytest.raises(ValueError, match=r"fixed effects: The levels \(9\) in 'period' are not present"):
        fit.predict(pd.DataFrame({"herd": ["1"], "period": ["9"]}))
    with pytest.raises(ValueError, match="missing or infinite values in column.s. 'period'.*new_data must be complete"):
        fit.predict(pd.DataFrame({"herd": ["1"], "period": [None]}))
    with pytest.raises(TypeError, match="new_data must be a pandas DataFrame, got list"):
        fit.predict([1, 2])
    assert list(new.columns) == ["herd", "period"] and new.shape == (2, 2)  # not modified


def test_predict_offsets_slopes_and_every_fit():
    """epil: a log offset-free Poisson; sleepstudy: random slopes, new Days values."""
    model = _bundled("sleepstudy")
    fit = model.fit("reml")
    new = pd.DataFrame({"Subject": [fit.model.design.random[0].levels[0]] * 2, "Days": [0.0, 10.0]})
    b0, b1 = fit.blups()[0][0]
    assert fit.predict(new)["estimate"].to_numpy() == pytest.approx([fit.beta[0] + b0, fit.beta[0] + b1 * 10 + fit.beta[1] * 10 + b0])
    gee = _bundled("ohio").fit("gee")
    ohio = bg.datasets.load("ohio").head(4)
    eta = gee.predict(ohio, kind="link")["estimate"].to_numpy()
    assert eta == pytest.approx((gee.beta[0] + gee.beta[1] * ohio["age"] + gee.beta[2] * ohio["smoke"]).to_numpy())
    with pytest.raises(ValueError, match="no random effects"):
        gee.predict(random_effects=True)
    pql = _bundled("epil").fit("pql")
    mean, link = pql.predict()["estimate"].to_numpy(), pql.predict(kind="link")["estimate"].to_numpy()
    assert mean == pytest.approx(np.exp(link), rel=1e-12)  # the log link's inverse, not just "positive"
    assert mean.mean() == pytest.approx(pql.model.design.y.mean(), rel=0.1)


@pytest.mark.slow
def test_posterior_predict_and_ppc(cbpp_comparison):
    post = cbpp_comparison.results["nuts"]
    pred = post.predict()
    assert list(pred.columns) == ["estimate", "std_error", "conf_low", "conf_high"] and len(pred) == 56
    draws = post.predict(kind="link", draws=True)
    beta, b = post.draws("beta"), post.draws("1|herd")
    d = post.model.design
    manual = np.einsum("cdp,np->cdn", beta, d.X) + b[:, :, d.random[0].index, 0]
    assert draws == pytest.approx(manual)
    new = pd.DataFrame({"herd": ["no-such-herd"], "period": ["1"]})
    assert post.predict(new, kind="link", draws=True)[..., 0] == pytest.approx(beta[..., 0])
    with warnings.catch_warnings(record=True) as caught:  # the parameters are the posterior's draws, kept
        warnings.simplefilter("always")
        yrep = post.posterior_predictive(random_seed=1)
    assert not [w for w in caught if "frozen" in str(w.message)], [str(w.message)[:200] for w in caught]
    assert yrep.shape == (2, 200, 56) and np.all(yrep <= d.trials)
    fig = post.plot_ppc(random_seed=1)
    assert fig.axes


@pytest.fixture(scope="module")
def sleep_int():
    """sleepstudy with Subject as integers (308, 309, ...), fitted by REML."""
    df = bg.datasets.load("sleepstudy").astype({"Subject": int})
    return df, bg.GLMM("Reaction ~ Days + (Days | Subject)", df).fit("reml")


@pytest.mark.parametrize("convert", [
    lambda s: s.astype(float),                 # what missing="drop" or a CSV round trip makes of ints
    lambda s: s.astype(str),                   # "308"
    lambda s: s.astype(float).astype(str),     # "308.0"
    lambda s: s.astype("Int64"),               # pandas nullable
    lambda s: s.astype("category"),
    lambda s: s.astype(object),
], ids=["float", "str", "str-float", "Int64", "category", "object"])
def test_group_levels_match_by_value_whatever_the_dtype(sleep_int, convert):
    """Issue 23: a grouping column read with another dtype lost every random effect (levels were
    looked up by str(value): '308.0' is not '308'), silently giving population-level predictions."""
    df, fit = sleep_int
    expected = fit.predict(df)["estimate"].to_numpy()
    assert fit.predict()["estimate"].to_numpy() == pytest.approx(expected, abs=1e-12)
    new = df.assign(Subject=convert(df["Subject"]))
    assert fit.predict(new)["estimate"].to_numpy() == pytest.approx(expected, abs=1e-12)
    assert fit.predict(new, allow_new_levels=False)["estimate"].to_numpy() == pytest.approx(expected, abs=1e-12)


def test_group_levels_match_the_other_way_and_in_interactions(sleep_int):
    df, fit = sleep_int
    expected = fit.predict(df)["estimate"].to_numpy()
    # fitted with floats (or strings), predicted with ints
    for dtype in (float, str):
        other = bg.GLMM("Reaction ~ Days + (Days | Subject)", df.astype({"Subject": dtype})).fit("reml")
        assert other.predict(df)["estimate"].to_numpy() == pytest.approx(expected, abs=1e-9)
    # nested groups: each column matched by value
    df2 = df.assign(half=(df["Days"] >= 5).astype(int))
    nested = bg.GLMM("Reaction ~ Days + (1 | Subject/half)", df2).fit("reml")
    expected = nested.predict()["estimate"].to_numpy()
    new = df2.astype({"Subject": float, "half": str})
    assert nested.predict(new)["estimate"].to_numpy() == pytest.approx(expected, abs=1e-12)


def test_levels_of_another_kind_that_match_nothing_are_an_error(sleep_int):
    df, fit = sleep_int
    renamed = df.assign(Subject="S" + df["Subject"].astype(str))
    with pytest.raises(ValueError, match=r"no row of new_data has a level of 'Subject'.*holds string values "
                                         r"\(dtype .*'S308'\).*held number values \(dtype int64, e.g. 308\)"):
        fit.predict(renamed)
    # genuinely new levels of the same kind: the population-level prediction, as before
    new = df.head(2).assign(Subject=[1, 2])
    pop = fit.predict(new, random_effects=False)["estimate"].to_numpy()
    assert fit.predict(new)["estimate"].to_numpy() == pytest.approx(pop)
    with pytest.raises(ValueError, match="not seen in fitting: '1', '2'"):
        fit.predict(new, allow_new_levels=False)
    # strings match strings exactly: "0308" is not "308"
    fs = bg.GLMM("Reaction ~ Days + (Days | Subject)", df.astype({"Subject": str})).fit("reml")
    with pytest.raises(ValueError, match="not seen in fitting: '0308'"):
        fs.predict(df.head(1).assign(Subject="0308"), allow_new_levels=False)


def test_a_categorical_fixed_effect_read_with_another_dtype_says_so(cbpp_model):
    """formulae refuses the levels 1..4 of an int period fitted as strings; the error says why."""
    fit = cbpp_model.fit("laplace")
    data = bg.datasets.load("cbpp").astype({"period": int})
    with pytest.raises(ValueError, match=r"not present in the original data set; new_data\['period'\] has dtype "
                                         r"int64 where the fitting data had str: convert it"):
        fit.predict(data)
