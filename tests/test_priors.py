import pymc as pm
import pytest

import bayesglmm as bg
from bayesglmm import priors as P


@pytest.fixture
def sleep():
    return bg.GLMM("Reaction ~ Days + (Days | Subject)", bg.datasets.load("sleepstudy"))


def test_defaults_follow_documented_rule(sleep):
    import numpy as np
    d = sleep.design
    s = float(np.std(d.y))
    pr = sleep.priors
    assert pr.fixed[0] == P.Normal(float(np.mean(d.y)), 5 * s)
    assert pr.fixed[1] == P.Normal(0.0, 2.5 * s / float(np.std(d.X[:, 1])))
    assert pr.sd[0][0] == P.HalfNormal(2.5 * s)
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
