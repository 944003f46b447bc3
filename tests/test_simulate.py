"""Issue 9 (simulation part): simulate, simulation_study (serial, process pool, Dask), bootstrap_lrt."""

import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg


# what depends on the machine and the executor, not on the seed
TIMING = ["seconds_per_fit", "compilations"]


def _lmm_design(n_groups=60, per=8, seed=0):
    rng = np.random.default_rng(seed)
    n = n_groups * per
    df = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(n_groups)], per), "x": rng.normal(size=n),
                       "h": np.tile([f"h{i}" for i in range(per)], n_groups)})
    df["y"] = 1 + 0.5 * df["x"] + rng.normal(size=n)
    return df


def test_simulate_keeps_the_design_and_is_reproducible(cbpp_model):
    sims = cbpp_model.simulate(n=3, random_seed=5)
    again = cbpp_model.simulate(n=3, random_seed=5)
    data = cbpp_model.design.data
    for s, a in zip(sims, again):
        assert list(s.columns) == list(data.columns) and len(s) == len(data)
        pd.testing.assert_frame_equal(s, a)
        assert (s["size"] == data["size"]).all() and (s["herd"] == data["herd"]).all()  # design kept
        assert ((0 <= s["incidence"]) & (s["incidence"] <= s["size"])).all()
    assert not sims[0]["incidence"].equals(sims[1]["incidence"])
    assert data["incidence"].equals(bg.datasets.load("cbpp")["incidence"])  # the model's data untouched
    with pytest.raises(ValueError, match="truth 'sd' needs a non-negative value for \\('herd', '\\(Intercept\\)'\\)"):
        cbpp_model.simulate({"beta": [0, 0, 0, 0]})
    with pytest.raises(ValueError, match="n must be a positive integer"):
        cbpp_model.simulate(n=0)


def test_simulate_recovers_the_truth_on_average():
    """Poisson counts at known β and SD: the mean of 200 data sets' responses matches E[y]."""
    model = bg.GLMM("y ~ x + (1 | g)", _lmm_design().assign(y=1), family="poisson")
    truth = {"beta": {"(Intercept)": 0.5, "x": 0.3}, "sd": {"g": 0.4}}
    ys = np.stack([d["y"].to_numpy() for d in model.simulate(truth, n=200, random_seed=1)])
    expected = np.exp(0.5 + 0.3 * model.design.X[:, 1] + 0.4**2 / 2)
    assert ys.mean() == pytest.approx(expected.mean(), rel=0.03)


@pytest.mark.slow
def test_study_is_identical_on_dask_and_serially():
    distributed = pytest.importorskip("distributed")
    model = bg.GLMM("y ~ x + (1 | g)", _lmm_design(20, 6))
    truth = {"beta": [1.0, 0.5], "sd": {"g": 0.7}, "sigma": 1.0}
    serial = bg.simulation_study(model, truth, methods=("reml", "ml"), n_reps=8, random_seed=11,
                                 executor="serial", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            on_dask = bg.simulation_study(model, truth, methods=("reml", "ml"), n_reps=8, random_seed=11,
                                          executor=client.get_executor(), progress=False)
    pd.testing.assert_frame_equal(serial.table().drop(columns=TIMING), on_dask.table().drop(columns=TIMING))
    cols = ["rep", "method", "parameter", "estimate", "conf_low", "conf_high"]
    pd.testing.assert_frame_equal(serial.replicates[cols], on_dask.replicates[cols])


@pytest.mark.slow
def test_nuts_in_a_study_compiles_once_and_is_identical_in_a_process_pool():
    """NUTS as a study method: each replication's model shares the first one's compiled graph (no
    compilation after the first fit), and a process pool gives exactly the serial study."""
    model = bg.GLMM("y ~ x + (1 | g)", _lmm_design(10, 5).assign(y=1), family="poisson")
    truth = {"beta": [0.5, 0.3], "sd": {"g": 0.5}}
    kw = dict(methods=("nuts", "laplace"), n_reps=4, random_seed=3, progress=False,
              nuts={"draws": 150, "tune": 150, "chains": 2})
    serial = bg.simulation_study(model, truth, executor="serial", **kw)
    per_fit = serial.replicates.drop_duplicates(["rep", "method"])
    nuts = per_fit[per_fit["method"] == "nuts"]
    assert (nuts["status"] == "ok").all() and nuts["compilations"].iloc[1:].eq(0).all()
    tab = serial.table().set_index(["parameter", "method"])
    assert tab.loc[("sd((Intercept)|g)", "nuts"), "n_ok"] == 4
    assert np.isfinite(tab.xs("nuts", level="method")["coverage"]).all()
    pooled = bg.simulation_study(model, truth, executor=None, **kw)
    cols = ["rep", "method", "parameter", "estimate", "conf_low", "conf_high"]
    pd.testing.assert_frame_equal(serial.replicates[cols], pooled.replicates[cols])
    with pytest.raises(TypeError, match="nuts options \\['cores'\\] are not accepted"):
        bg.simulation_study(model, truth, methods=("nuts",), nuts={"cores": 2})


@pytest.mark.slow
def test_reml_wald_coverage_is_nominal():
    """60 groups of 8, random intercept: REML's Wald intervals of β cover ~95% (within 3 MCSE)."""
    model = bg.GLMM("y ~ x + (1 | g)", _lmm_design())
    truth = {"beta": [1.0, 0.5], "sd": {"g": 0.8}, "sigma": 1.0}
    study = bg.simulation_study(model, truth, methods="reml", n_reps=150, random_seed=2, executor="serial",
                                progress=False)
    tab = study.table().set_index("parameter")
    for term in ("(Intercept)", "x"):
        row = tab.loc[term]
        assert abs(row["coverage"] - 0.95) <= 3 * max(row["coverage_mcse"], np.sqrt(0.95 * 0.05 / 150)), term
        assert abs(row["bias"]) <= 3 * row["bias_mcse"], term
    assert tab["share_failed"].max() == 0
    text = str(study)
    assert "Simulation study: 150 replications" in text and "coverage" in text
    assert "<table" in study._repr_html_() and study.flags == []
    assert study.plot().axes


@pytest.mark.slow
def test_pql_sd_bias_is_visible_for_small_binary_clusters_and_shrinks_with_size():
    """Breslow & Lin (1995): PQL underestimates the SD for binary data with small clusters."""
    def design(per):
        rng = np.random.default_rng(per)
        n = 50 * per
        return pd.DataFrame({"g": np.repeat([f"c{i}" for i in range(50)], per),
                             "trt": np.repeat(rng.integers(0, 2, 50), per), "y": rng.integers(0, 2, n)})

    bias = {}
    for per in (4, 20):
        model = bg.GLMM("y ~ trt + (1 | g)", design(per), family="bernoulli")
        study = bg.simulation_study(model, {"beta": [1.0, -0.8], "sd": {"g": 1.5}}, methods="pql", n_reps=40,
                                    random_seed=per, executor="serial", progress=False)
        row = study.table().set_index("parameter").loc["sd((Intercept)|g)"]
        bias[per] = (row["bias"], row["bias_mcse"])
    (b4, se4), (b20, se20) = bias[4], bias[20]
    assert b4 + 3 * se4 < 0  # clearly biased low with clusters of 4 (bacteria-like)
    assert abs(b20) < abs(b4) and b4 + 2 * np.hypot(se4, se20) < b20  # and less so with clusters of 20


@pytest.mark.slow
def test_bootstrap_lrt_matches_the_mixture_on_a_null_case():
    """Crossed Gaussian model whose second factor has no variance: the bootstrap p-value agrees with
    the 0.5 chi2(0) + 0.5 chi2(1) mixture (within Monte Carlo error), not with the naive chi2(1)."""
    df = _lmm_design(40, 20, seed=4)
    full = bg.GLMM("y ~ x + (1 | g) + (1 | h)", df).fit("ml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reduced = bg.GLMM("y ~ x + (1 | g)", df).fit("ml")
    boot = bg.bootstrap_lrt(full, reduced, n=200, random_seed=1, executor="serial", progress=False)
    tab = boot.table().iloc[0]
    assert boot.n == 200 and boot.n_failed == 0
    assert abs(tab["p_value_bootstrap"] - tab["p_value_mixture"]) <= 3 * tab["bootstrap_mcse"] + 0.02
    # under H0 the statistic sits on the boundary (0) about half the time with many levels of the
    # tested factor (h has 20: observed 0.54), more with few (Crainiceanu & Ruppert 2004; with 6
    # levels 0.655 — and 0.785 before the fits stopped taking θ = 0's zero gradient for a minimum,
    # which also made this bootstrap agree with the mixture by accident)
    assert 0.45 <= np.mean(boot.null_statistics < 1e-8) <= 0.65
    assert "Parametric bootstrap LRT" in str(boot) and "<table" in boot._repr_html_()
    assert boot.plot().axes


def test_bootstrap_lrt_on_sleepstudy_random_slope():
    sleep = bg.datasets.load("sleepstudy")
    full = bg.GLMM("Reaction ~ Days + (Days | Subject)", sleep).fit("ml")
    reduced = bg.GLMM("Reaction ~ Days + (1 | Subject)", sleep).fit("ml")
    boot = bg.bootstrap_lrt(full, reduced, n=19, random_seed=3, executor="serial", progress=False)
    assert boot.statistic == pytest.approx(42.139, abs=1e-3)  # as R's anova(m0, m1)
    assert boot.p_value == pytest.approx(1 / 20)  # no null draw reaches 42: the smallest p with n = 19
    assert np.nanmax(boot.null_statistics) < 15


def test_bootstrap_lrt_refuses_models_that_are_not_nested():
    """Issue 23: the bootstrap refitted and returned a p-value for any pair; it checks nesting (through
    bg.lrt) before simulating anything."""
    df = _lmm_design(12, 5, seed=2)
    permuted = df.assign(x=df["x"].sample(frac=1, random_state=0).to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # y has no group variance: singular fits
        full = bg.GLMM("y ~ x + (1 | g)", df).fit("ml")
        other_group = bg.GLMM("y ~ x + (1 | h)", df).fit("ml")
        other_x = bg.GLMM("y ~ x + (1 | g) + (1 | h)", permuted).fit("ml")
    with pytest.raises(ValueError, match="grouping factor 'h' groups the rows as no grouping factor"):
        bg.bootstrap_lrt(full, other_group, n=2, executor="serial", progress=False)
    with pytest.raises(ValueError, match=r"fixed-effect column\(s\) 'x' are not in the span"):
        bg.bootstrap_lrt(other_x, full, n=2, executor="serial", progress=False)


def test_simulated_response_keeps_a_sensible_dtype():
    """Issue 23: a pandas nullable Int64 response made simulate() fail with a NumPy TypeError; and a
    Gaussian draw for an integer column was truncated to integers."""
    ohio = bg.datasets.load("ohio")
    truth = {"beta": [-3.0, -0.2, 0.4], "sd": {"id": 2.0}}
    for dtype in ("Int64", bool, "boolean", "int8"):
        model = bg.GLMM("resp ~ age + smoke + (1 | id)", ohio.astype({"resp": dtype}), family="bernoulli")
        (sim,) = model.simulate(truth, random_seed=1)
        assert sim["resp"].dtype == model.design.data["resp"].dtype
        assert set(sim["resp"].astype(int)) == {0, 1}
        assert bg.GLMM("resp ~ age + smoke + (1 | id)", sim, family="bernoulli").design.nobs == len(ohio)
    sleep = bg.datasets.load("sleepstudy").assign(R=lambda d: d["Reaction"].round().astype(int))
    model = bg.GLMM("R ~ Days + (1 | Subject)", sleep)
    (sim,) = model.simulate({"beta": [250.0, 10.0], "sd": {"Subject": 30.0}, "sigma": 30.0}, random_seed=2)
    assert sim["R"].dtype == np.float64 and not np.all(sim["R"] == np.round(sim["R"]))
    epil = bg.datasets.load("epil").astype({"y": "int8"})  # counts beyond int8: int64, not wrapped around
    model = bg.GLMM("y ~ 1 + (1 | subject)", epil, family="poisson")
    (sim,) = model.simulate({"beta": [5.5], "sd": {"subject": 0.1}}, random_seed=3)
    assert sim["y"].dtype == np.int64 and sim["y"].min() > 127


def test_simulate_a_response_named_in_backticks():
    """Found with issue 23: a backticked response column was taken for an expression."""
    cbpp = bg.datasets.load("cbpp").rename(columns={"incidence": "new cases", "size": "herd size"})
    model = bg.GLMM("cbind(`new cases`, `herd size` - `new cases`) ~ period + (1 | herd)", cbpp, family="binomial")
    (sim,) = model.simulate({"beta": [-1.4, -1.0, -1.1, -1.6], "sd": {"herd": 0.6}}, random_seed=1)
    assert list(sim.columns) == list(cbpp.columns) and not sim["new cases"].equals(cbpp["new cases"])
    assert np.all(sim["new cases"] <= sim["herd size"])


def test_profile_goes_only_to_the_methods_that_have_it(cbpp_model):
    """House, second pass: profile=True reached every fit's summary, so every PQL fit of such a study
    "failed" (PQL has no profile) and a GEE fit ignored it; it now goes to the fits that can profile."""
    study = bg.simulation_study(cbpp_model, methods=("laplace", "pql", "gee"), n_reps=2, random_seed=3,
                                executor="serial", progress=False, profile=True)
    reps = study.replicates
    assert (reps["status"] == "ok").all() and not study.flags
    sd = reps[reps["parameter"] == "sd((Intercept)|herd)"].set_index(["method", "rep"])
    assert sd.loc["laplace", "conf_low"].notna().all() and sd.loc["pql", "conf_low"].isna().all()
