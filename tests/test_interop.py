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
    # a one-term block has no correlation to drop: its bar is kept as written
    assert _uncorrelated("y ~ (1 | Female) + (0 + x | g) + (x | s) + (1 | a:b)") == \
        "y ~ (1 | Female) + (0 + x | g) + (x || s) + (1 | a:b)"
    sleep = bmb.Model("Reaction ~ Days + (1 + Days | Subject)", bg.datasets.load("sleepstudy"))
    assert not bg.from_bambi(sleep).design.random[0].correlated
    assert bg.from_bambi(sleep, correlated=True).design.random[0].has_correlation


def test_from_bambi_errors():
    with pytest.raises(TypeError, match="takes a bambi.Model"):
        bg.from_bambi("y ~ x")
    student = bmb.Model("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy"), family="t")
    with pytest.raises(ValueError, match="bambi family 't' is not supported"):
        bg.from_bambi(student)


@pytest.mark.parametrize("family,formula,data,name,link", [
    ("negativebinomial", "count ~ spp + mined + (1 | site)", "salamander_counts", "negativebinomial", "log"),
    ("gamma", "y ~ x + trt + (1 | g)", "gamma_sim", "gamma", "inverse"),
    ("beta_binomial", "p(incidence, size) ~ period + (1 | herd)", "cbpp", "betabinomial", "logit")])
def test_from_bambi_dispersion_families(family, formula, data, name, link):
    """bambi's negativebinomial, gamma and beta_binomial become the same families and links; bambi's prior
    on the dispersion itself (alpha, kappa) is not ours (on 1/√θ): a warning names it, the default stays."""
    b = bmb.Model(formula, bg.datasets.load(data), family=family)
    with pytest.warns(UserWarning, match="1/√"):
        model = bg.from_bambi(b)
    assert model.family.name == name and model.family.link.name == link and model.family.has_dispersion
    assert "HalfNormal(sigma=2.5)" in model.priors.table().set_index("parameter").filter(like="dispersion",
                                                                                            axis=0)["prior"].iloc[0]


@pytest.mark.slow
def test_same_model_both_ways_posteriors_agree():
    """cbpp sampled by bambi and by bayesglmm (from_bambi, bambi's priors, its intercept prior at the
    centred predictors): every coefficient's and the herd SD's posterior mean within 3.5 combined Monte
    Carlo SEs (the 0.2 % family-wise bound over five) and their mean squared z-score near 1. With the
    intercept's prior put on the uncentred intercept instead (the bug this caught) the period effects
    sat 2.5-5.4 MCSE apart over three seeds, all of one sign (mean z² 4.2-9.8); with it, within 1.3."""
    import arviz as az

    data = bg.datasets.load("cbpp")
    bmodel = bmb.Model("p(incidence, size) ~ period + (1 | herd)", data, family="binomial")
    bidata = bmodel.fit(draws=1000, tune=1000, chains=4, random_seed=5, progressbar=False,
                        inference_method="pymc")
    post = bg.from_bambi(bmodel).sample(draws=1000, tune=1000, chains=4, random_seed=5, progressbar=False)
    bpost = bidata["posterior"]
    theirs = np.concatenate([bpost["Intercept"].to_numpy()[..., None], bpost["period"].to_numpy()], axis=2)
    pairs = [(post.draws("beta")[:, :, j], theirs[:, :, j]) for j in range(4)]
    pairs.append((post.draws("1|herd_sd").reshape(4, -1), bpost["1|herd_sigma"].to_numpy()))
    names = [*post.model.design.fixed_names, "sd 1|herd"]
    z = np.array([(ours.mean() - bambis.mean()) / np.hypot(float(az.mcse(ours)), float(az.mcse(bambis)))
                  for ours, bambis in pairs])
    assert np.max(np.abs(z)) <= 3.5, dict(zip(names, z.round(2)))
    assert np.mean(z**2) <= 1.2 + 4 * np.sqrt(2 / len(z)), dict(zip(names, z.round(2)))


def test_bambi_priors_carry_over():
    from bayesglmm import priors as P

    bmodel = bmb.Model("p(incidence, size) ~ period + (1 | herd)", bg.datasets.load("cbpp"), family="binomial")
    table = bg.from_bambi(bmodel).priors.table().set_index("parameter")
    assert table.loc["(Intercept)", "prior"] == "Normal(mu=0, sigma=1.5) at the columns' means"
    assert table.loc["period[3]", "prior"] == "Normal(mu=0, sigma=1)"
    assert table.loc["sd 1|herd", "prior"] == "HalfNormal(sigma=2.53553)"
    uncentred = bmb.Model("p(incidence, size) ~ period + (1 | herd)", bg.datasets.load("cbpp"), family="binomial",
                          center_predictors=False)
    assert bg.from_bambi(uncentred).priors.table().set_index("parameter").loc["(Intercept)", "prior"] == \
        "Normal(mu=0, sigma=1.5)"
    own = bg.from_bambi(bmodel, bambi_priors=False, priors={"sd": P.Exponential(1.0)})
    assert own.priors.table().set_index("parameter").loc["sd 1|herd", "prior"].startswith("Exponential")
