"""Issue 9 (prior sensitivity): power-scaling on the top-level priors, and refits under prior sets."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm.priors import HalfCauchy, InverseGamma

pytestmark = pytest.mark.filterwarnings("ignore::bayesglmm.bayes.posterior.SamplingWarning")


@pytest.mark.slow
def test_power_scaling_does_not_flag_an_informed_sd(cbpp_comparison):
    """cbpp's herd SD is informed by the data: no prior-data conflict, no strong-prior reading."""
    post = cbpp_comparison.results["nuts"]
    res = bg.prior_sensitivity(post, method="power")
    t = res.table().set_index("parameter")
    sd = t.loc["1|herd_sd[(Intercept)]"]
    assert sd["diagnosis"] == "✓" and sd["prior"] < 0.05 and sd["likelihood"] > 0.05
    # only the top-level priors are scaled: no standardized random effects in the table
    assert not any(p.startswith("1|herd_z") for p in t.index) and len(t) == 5
    assert res.flags == [] and "power-scaling" in str(res) and "<table" in res._repr_html_()


@pytest.mark.slow
def test_refit_under_prior_sets_reports_shifts_and_flags_the_near_improper_prior(cbpp_model):
    priors = {"HalfCauchy(1)": {"sd": HalfCauchy(1.0)},
              "InverseGamma(0.001, 0.001) on the variance": {"sd": InverseGamma(0.001, 0.001)}}
    res = bg.prior_sensitivity(cbpp_model, priors, method="refit", draws=300, tune=300, chains=2, random_seed=4)
    t = res.table()
    assert set(t["prior"]) == {"reference (default priors)", *priors}
    ref = t[t["prior"] == "reference (default priors)"]
    assert np.allclose(ref["shift"], 0)
    sd = t[t["kind"] == "sd"].set_index("prior")
    assert bool(sd.loc["InverseGamma(0.001, 0.001) on the variance", "near_improper"])
    assert not bool(sd.loc["HalfCauchy(1)", "near_improper"])
    assert np.all(np.isfinite(t["shift"])) and len(res.seconds) == 3
    # a sweep of three prior sets (three families) compiles once: the prior sets are data in one
    # graph, and the later refits compile nothing (Numba's compile events, counted per refit)
    assert list(res.compilations.values())[1:] == [0, 0]
    assert t.groupby("prior")["compilations"].first().to_dict() == res.compilations
    assert res.plot().axes
    with pytest.raises(ValueError, match="method must be 'power' or 'refit'"):
        bg.prior_sensitivity(cbpp_model, method="bogus")


def test_a_prior_set_keeps_the_models_other_priors(cbpp_model):
    from bayesglmm.priors import HalfNormal, Normal
    from bayesglmm.sensitivity import _with_set

    model = cbpp_model.update(priors={"1|herd": HalfNormal(3.0), "period[2]": Normal(0, 1)})
    merged = _with_set(model, {"sd": HalfCauchy(1.0)})
    assert merged == {"period[2]": Normal(0, 1), "sd": HalfCauchy(1.0)}
    refit = model.update(priors=merged)
    labels = dict(refit.priors.labels)
    assert labels["sd 1|herd"] == "HalfCauchy(beta=1)" and labels["period[2]"] == "Normal(mu=0, sigma=1)"


@pytest.mark.slow
def test_refit_sweep_by_nutpie_compiles_once(cbpp_model):
    """With nutpie the first refit compiles and the later ones reuse its compiled model (priors of
    other families are data in the same all-families graph): two hits, no Numba compilation."""
    from bayesglmm.bayes.compilation import compiled_models

    priors = {"HalfCauchy(1)": {"sd": HalfCauchy(1.0)}, "InverseGamma(2, 1)": {"sd": InverseGamma(2.0, 1.0)}}
    hits = compiled_models.hits
    res = bg.prior_sensitivity(cbpp_model, priors, method="refit", draws=300, tune=300, chains=2, random_seed=4,
                               nuts_sampler="nutpie")
    assert compiled_models.hits - hits >= 2 and list(res.compilations.values())[1:] == [0, 0]
    sd = res.table().query("kind == 'sd'").set_index("prior")
    assert np.all(np.isfinite(sd["median"])) and 0.2 < sd.loc["HalfCauchy(1)", "median"] < 2.0
