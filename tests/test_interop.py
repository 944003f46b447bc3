import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm.interop import _uncorrelated

bmb = pytest.importorskip("bambi")  # bambi is in the test extra; this only guards a bare install


def test_from_bambi_carries_formula_data_family_link():
    data = bg.datasets.load("cbpp")
    bmodel = bmb.Model("p(incidence, size) ~ period + (1 | herd)", data, family="binomial")
    model = bg.from_bambi(bmodel)
    ref = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")
    assert model.family == ref.family
    assert model.design.fixed_names == ref.design.fixed_names
    assert np.array_equal(model.design.X, ref.design.X) and np.array_equal(model.design.trials, ref.design.trials)
    # bambi's copy of the data holds herd as a Categorical with lexicographic categories ("1", "10", ...):
    # a Categorical keeps its category order, so only the set of levels is the same as from the strings
    assert set(model.design.random[0].levels) == set(ref.design.random[0].levels)
    assert model.fit("laplace").loglik == pytest.approx(ref.fit("laplace").loglik, abs=1e-8)

    probit = bg.from_bambi(bmb.Model("Mate ~ WSf * WSm + (1 | Female) + (1 | Male)", bg.datasets.load("salamander"),
                                     family="bernoulli", link="probit"))
    assert probit.family.link.name == "probit" and probit.design.groups == ("Female", "Male")


def test_bambi_slopes_are_uncorrelated():
    assert _uncorrelated("y ~ x + (1 + x | g) + (1 || h)") == "y ~ x + (1 + x || g) + (1 || h)"
    sleep = bmb.Model("Reaction ~ Days + (1 + Days | Subject)", bg.datasets.load("sleepstudy"))
    assert not bg.from_bambi(sleep).design.random[0].correlated
    assert bg.from_bambi(sleep, correlated=True).design.random[0].has_correlation


def test_from_bambi_errors():
    with pytest.raises(TypeError, match="takes a bambi.Model"):
        bg.from_bambi("y ~ x")
    gamma = bmb.Model("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy"), family="gamma")
    with pytest.raises(ValueError, match="bambi family 'gamma' is not supported"):
        bg.from_bambi(gamma)


@pytest.mark.slow
def test_same_model_both_ways_posteriors_agree():
    """cbpp sampled by bambi and by bayesglmm (from_bambi, bambi's priors): posterior means within
    0.15 posterior SD (Monte Carlo error of 4000 draws is ~0.03 SD), the herd SD's mean within 10%."""
    data = bg.datasets.load("cbpp")
    bmodel = bmb.Model("p(incidence, size) ~ period + (1 | herd)", data, family="binomial")
    bidata = bmodel.fit(draws=1000, tune=1000, chains=4, random_seed=5, progressbar=False,
                        inference_method="pymc")
    post = bg.from_bambi(bmodel).sample(draws=1000, tune=1000, chains=4, random_seed=5, progressbar=False)
    fe = post.fixed_effects().set_index("term")
    bpost = bidata["posterior"]
    b_int = bpost["Intercept"].values.ravel()
    assert abs(fe.loc["(Intercept)", "estimate"] - b_int.mean()) < 0.15 * fe.loc["(Intercept)", "std_error"]
    b_period = bpost["period"].values.reshape(-1, 3)
    for j, term in enumerate(["period[2]", "period[3]", "period[4]"]):
        assert abs(fe.loc[term, "estimate"] - b_period[:, j].mean()) < 0.15 * fe.loc[term, "std_error"]
    sd = post.variance_components()["estimate"].iloc[0]
    assert sd == pytest.approx(bpost["1|herd_sigma"].values.mean(), rel=0.1)


def test_bambi_priors_carry_over():
    from bayesglmm import priors as P

    bmodel = bmb.Model("p(incidence, size) ~ period + (1 | herd)", bg.datasets.load("cbpp"), family="binomial")
    table = bg.from_bambi(bmodel).priors.table().set_index("parameter")
    assert table.loc["(Intercept)", "prior"] == "Normal(mu=0, sigma=1.5)"
    assert table.loc["period[3]", "prior"] == "Normal(mu=0, sigma=1)"
    assert table.loc["sd 1|herd", "prior"] == "HalfNormal(sigma=2.53553)"
    own = bg.from_bambi(bmodel, bambi_priors=False, priors={"sd": P.Exponential(1.0)})
    assert own.priors.table().set_index("parameter").loc["sd 1|herd", "prior"].startswith("Exponential")
