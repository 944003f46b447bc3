import pymc as pm
import pytensor.tensor as pt
import pytest

import bayesglmm as bg
from bayesglmm import priors as P
from bayesglmm.priors import CenteredIntercept, HalfNormal, Normal


@pytest.fixture
def sleep():
    return bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))


def test_defaults_follow_documented_rule(sleep):
    import numpy as np
    d = sleep.design
    s = float(np.std(d.y))
    pr = sleep.priors
    # the intercept's prior is on the intercept at the other columns' means (bambi, rstanarm, brms)
    assert pr.fixed[0] == P.CenteredIntercept(P.Normal(float(np.mean(d.y)), 5 * s))
    assert pr.center == pytest.approx((0.0, float(np.mean(d.X[:, 1]))))
    assert pr.fixed[1].sigma == pytest.approx(2.5 * s / float(np.std(d.X[:, 1])), rel=1e-12)  # one covariate: its SD
    # the intercept of the correlated (Days | Subject) is at Days = 0: its SD's scale is widened for the
    # slope's zero, √(1 + (mean/sd)²)
    days = d.random[0].Xr[:, 1]
    assert pr.sd[0][0].sigma == pytest.approx(2.5 * s * np.sqrt(1 + (days.mean() / days.std()) ** 2), rel=1e-12)
    assert pr.sd[0][1] == P.HalfNormal(2.5 * s / float(np.std(d.X[:, 1])))
    assert pr.corr[0] == P.LKJ(2.0) and pr.sigma == P.HalfStudentT(3.0, s)
    assert list(sleep.priors.table()["parameter"]) == [
        "(Intercept)", "Days", "sd 1|Subject", "sd Days|Subject", "corr|Subject", "sigma"]


def test_overrides_most_specific_wins():
    df = bg.datasets.load("salamander")
    m = bg.GLMM("Mate ~ WSf * WSm + (1 | Female) + (1 | Male)", df, family="bernoulli",
                priors={"sd": P.HalfCauchy(1.0), "1|Female": P.Exponential(2.0),
                        "fixed": P.StudentT(3, 0, 2), "Intercept": P.Normal(0, 3)})
    assert m.priors.sd == ((P.Exponential(2.0),), (P.HalfCauchy(1.0),))
    assert m.priors.fixed[0] == P.Normal(0, 3)
    assert all(p == P.StudentT(3, 0, 2) for p in m.priors.fixed[1:])


@pytest.mark.parametrize("bad", ["flat", "HalfFlat", None, pm.HalfFlat, pm.Flat])
def test_flat_priors_refused(bad):
    with pytest.raises(P.ImproperPriorError, match="proper priors only"):
        bg.GLMM("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy"), priors={"sd": bad})


def test_flat_constructors_and_improper_bounds_refused():
    with pytest.raises(P.ImproperPriorError, match="improper"):
        P.HalfFlat()
    with pytest.raises(P.ImproperPriorError, match="improper"):
        P.Flat()
    with pytest.raises(P.ImproperPriorError, match="finite upper bound"):
        P.Uniform(0, float("inf"))
    with pytest.raises(P.ImproperPriorError, match="sigma must be a finite positive"):
        P.HalfNormal(0.0)
    with pytest.raises(P.ImproperPriorError, match="must start at 0"):
        P.Uniform(-1, 3)


def test_wrong_kind_and_unknown_key():
    df = bg.datasets.load("sleepstudy")
    with pytest.raises(TypeError, match="sd prior must be HalfNormal"):
        bg.GLMM("Reaction ~ Days + (1 | Subject)", df, priors={"sd": P.Normal(0, 1)})
    with pytest.raises(TypeError, match="fixed prior must be Normal or StudentT"):
        bg.GLMM("Reaction ~ Days + (1 | Subject)", df, priors={"Days": P.HalfNormal(1)})
    with pytest.raises(KeyError, match="names no parameter.*valid keys"):
        bg.GLMM("Reaction ~ Days + (1 | Subject)", df, priors={"sd|Cow": P.HalfNormal(1)})
    with pytest.raises(TypeError, match="bayesglmm.priors object"):
        bg.GLMM("Reaction ~ Days + (1 | Subject)", df, priors={"sd": 1.0})


@pytest.mark.slow
def test_centered_intercept_prior_is_on_the_intercept_at_the_columns_means():
    """bambi's and rstanarm's intercept prior: N(β₀ + x̄ᵀβ; 0, 1.5) × N(β; 0, 1), a proper joint prior
    (a shear of independent ones); its draws and its log density say so, and β₀ itself is reported."""
    import numpy as np
    from scipy import stats

    df = bg.datasets.load("cbpp")
    m = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, family="binomial",
                priors={"Intercept": P.CenteredIntercept(P.Normal(0, 1.5)), "fixed": P.Normal(0, 1)})
    xbar = m.design.X.mean(axis=0)
    assert m.priors.center == pytest.approx((0.0, *xbar[1:]))
    assert m.priors.table()["prior"].iloc[0] == "Normal(mu=0, sigma=1.5) at the columns' means"
    plain = bg.GLMM(m.formula, df, family="binomial", priors={"Intercept": P.Normal(0, 1.5)})
    assert plain.priors.center is None  # a Normal given for the intercept is on the raw intercept
    assert bg.GLMM(m.formula, df, family="binomial").priors.center == pytest.approx(m.priors.center)  # the default
    beta = np.array([-1.2, -0.9, -1.0, -1.4])
    expected = stats.norm(0, 1.5).logpdf(beta[0] + xbar[1:] @ beta[1:]) + stats.norm(0, 1).logpdf(beta[1:]).sum()
    from bayesglmm.bayes.marginalized import build_marginal_model
    from bayesglmm.bayes.model import build_pymc_model

    for pm_model in (m.pymc_model(), build_pymc_model(m.design, m.family, m.priors, families="all"),
                     build_marginal_model(m.design, m.family, m.priors, nagq=5)):
        rv = pm_model["beta"]
        value = pm_model.rvs_to_values[rv]
        transform = pm_model.rvs_to_transforms.get(rv)  # the sampler's frame of β, if any
        w = beta if transform is None else transform.forward(pt.as_tensor_variable(beta)).eval()
        point = {**pm_model.initial_point(), value.name: w}
        logp = pm_model.compile_logp(vars=[rv], sum=True, jacobian=False)
        assert logp(point) == pytest.approx(expected, abs=1e-10)
    prior = pm.sample_prior_predictive(draws=4000, model=m.pymc_model(), var_names=["beta"], random_seed=3)
    d = prior["prior"]["beta"].to_numpy().reshape(-1, 4)
    at_means = d[:, 0] + d[:, 1:] @ xbar[1:]
    assert abs(at_means.std() - 1.5) < 0.06 and abs(d[:, 0].std() - np.sqrt(1.5**2 + xbar[1:] @ xbar[1:])) < 0.06
    with pytest.raises(TypeError, match="CenteredIntercept is for the intercept"):
        m.update(priors={"fixed": P.CenteredIntercept(P.Normal(0, 1))})
    with pytest.raises(TypeError, match="takes a Normal or StudentT prior"):
        P.CenteredIntercept(P.HalfNormal(1))
    with pytest.raises(KeyError, match="the model has no intercept"):
        bg.GLMM("Reaction ~ 0 + Days + (1 | Subject)", bg.datasets.load("sleepstudy"),
                priors={"Intercept": P.CenteredIntercept(P.Normal(250, 50))})


def test_a_covariate_named_like_a_key_keeps_its_own_prior():
    """A covariate named ``sigma`` in a Gaussian model got the residual SD's HalfStudentT (positive
    only) as its coefficient's prior; a column named ``Intercept`` took the intercept's key."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.normal(size=40), "sigma": rng.normal(size=40), "Intercept": rng.normal(size=40),
                       "g": np.repeat(np.arange(8), 5)})
    model = bg.GLMM("y ~ sigma + Intercept + (1 | g)", df, priors={"sigma": HalfNormal(2.0), "Intercept": Normal(0, 3)})
    fixed = dict(zip(model.design.fixed_names, model.priors.fixed))
    spread = P.partial_sd(model.design.X)[model.design.fixed_names.index("sigma")]
    assert isinstance(fixed["sigma"], Normal) and fixed["sigma"].sigma == pytest.approx(2.5 * df.y.std(ddof=0) / spread)
    assert fixed["Intercept"] == Normal(0, 3) and isinstance(fixed["(Intercept)"], CenteredIntercept)
    assert model.priors.sigma == HalfNormal(2.0)
