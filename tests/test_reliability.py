"""Issue 8: every failure a user can meet is either handled with a flag or a clear error.

Each test reproduces one failure observed on main before the fix (numbered as in the issue).
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.cli import main
from bayesglmm.results import FitFailedError

from .conftest import _bundled


def _separated(link="logit", outcome=1, seed=0):
    """A binary GLMM where every observation with f = "c" has the same outcome."""
    rng = np.random.default_rng(seed)
    n = 120
    df = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(12)], 10),
                       "x": (rng.uniform(size=n) < 0.3).astype(int), "f": rng.choice(list("abc"), n)})
    df["y"] = (rng.uniform(size=n) < 0.5).astype(int)
    df.loc[df["f"] == "c", "y"] = outcome
    return bg.GLMM("y ~ x + f + (1 | g)", df, family="bernoulli", link=link)


# 1. separation: raised LinAlgError from the GLM start (all successes in a level)
@pytest.mark.parametrize("method", ["laplace", "agq", "pql"])
@pytest.mark.parametrize("link", ["logit", "probit"])
def test_separation_completes_with_a_flag_naming_the_term(method, link):
    model = _separated(link)
    with pytest.warns(bg.SeparationWarning, match=r"'f\[c\]'.*all successes.*model.sample\(\)"):
        fit = model.fit(method)
    kinds = {f.kind: f.message for f in fit.flags}
    assert "f[c]" in kinds["separation"]
    j = model.design.fixed_names.index("f[c]")
    assert fit.beta[j] > 3  # heading for +inf, as glmer's estimate does
    se = np.sqrt(np.diag(fit.vcov))
    assert not np.isfinite(se[j]) or se[j] > 10 * abs(fit.beta[j]) or "nan_se" in kinds
    others = [k for k in range(len(fit.beta)) if k != j]
    assert np.all(np.isfinite(fit.beta[others])) and np.all(np.abs(fit.beta[others]) < 3)


# 2. GEE under separation: all-NaN estimates, labelled "ok" by compare
def test_gee_under_separation_fails_clearly_and_compare_says_failed():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(20)], 10), "x": rng.normal(size=200),
                       "f": rng.choice(["a", "b", "c"], 200)})
    df["y"] = (rng.uniform(size=200) < 0.5).astype(int)
    df.loc[df["f"] == "c", "y"] = 0
    model = bg.GLMM("y ~ x + f + (1 | g)", df, family="bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no statsmodels chatter escapes
        warnings.simplefilter("ignore", bg.SeparationWarning)
        with pytest.raises(FitFailedError, match=r"GEE failed.*NaN.*separation by 'f\[c\]'"):
            model.fit("gee")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = bg.compare(model, methods=("laplace", "gee"), profile=False)
    t = cmp.table()
    gee = t[t["method"] == "gee"]
    assert list(gee["status"]) == ["failed"] and "separation" in gee["note"].iloc[0]
    assert "gee" in cmp.failed and any("FAILED" in line for line in cmp.notes())
    lap = t[t["method"] == "laplace"]
    assert (lap["status"] == "ok").all()
    assert lap["flags"].str.contains(r"separation: 'f\[c\]'").all()  # the flag is on every row
    assert not t.loc[t["status"] == "ok", "estimate"].isna().any()


# 3. CLI: invalid values checked before fitting, exit codes, --missing, the seed printed
@pytest.mark.parametrize("argv, message", [
    (["compare", "--draws", "-5"], "--draws must be a positive integer"),
    (["compare", "--draws", "0", "--methods", "nuts"], "--draws must be a positive integer"),
    (["sample", "--chains", "0"], "--chains must be a positive integer"),
    (["compare", "--nagq", "0"], "--nagq must be an integer from 1 to"),
    (["compare", "--methods", "laplace,bogus"], "unknown method.*bogus"),
    (["compare", "--seed", "-1"], "--seed must be a non-negative integer"),
])
def test_cli_rejects_invalid_values_before_fitting(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bayesglmm: error:")
    assert re.search(message, err[0])
    assert "fitting" not in captured.out  # nothing was fitted


def test_cli_exit_1_when_every_method_fails_missing_drop_and_seed(tmp_path, capsys):
    df = bg.datasets.load("sleepstudy")
    path = tmp_path / "sleep.csv"
    df.to_csv(path, index=False)
    # the crossed salamander model by AGQ and GEE only: neither applies (one grouping factor each)
    rc = main(["compare", "--dataset", "salamander", "--methods", "agq,gee", "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert rc == 1 and "every requested method failed or could not apply" in captured.err
    assert "seed: " in captured.out  # a seed is drawn and printed when not given
    # --missing drop: the CLI offers what the error message suggests
    df3 = df.copy()
    df3.loc[3, "Reaction"] = np.nan
    path3 = tmp_path / "missing.csv"
    df3.to_csv(path3, index=False)
    args = ["compare", "--data", str(path3), "--formula", "Reaction ~ Days + (1 | Subject)", "--family", "gaussian",
            "--methods", "reml", "--no-profile", "--seed", "4", "--out", str(tmp_path / "m")]
    assert main(args) == 2 and "missing" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="1"):
        assert main(args + ["--missing", "drop"]) == 0
    assert "seed: 4" in capsys.readouterr().out


# 4. NaN Hessians and undefined likelihoods
@pytest.mark.slow
def test_identity_poisson_with_negative_means_is_a_clear_error():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(20)], 10), "x": rng.normal(size=200)})
    df["y"] = rng.poisson(np.clip(1 + 1.5 * df["x"], 0.05, None))
    model = bg.GLMM("y ~ x + (1 | g)", df, family="poisson", link="identity")
    for method in ("laplace", "pql"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(FitFailedError, match="mean is outside the family's support.*identity link"):
                model.fit(method)


def test_non_finite_hessian_gives_nan_ses_and_a_flag(cbpp_model, monkeypatch):
    import bayesglmm.frequentist.laplace as lap
    import bayesglmm.frequentist.optimize as opt

    nan_hessian = lambda *a, **k: np.full((5, 5), np.nan)  # noqa: E731
    monkeypatch.setattr(lap, "hessian_from_grad", nan_hessian)  # raising=True: the name must exist
    monkeypatch.setattr(opt, "hessian_from_grad", nan_hessian)
    with pytest.warns(bg.ConvergenceWarning, match="no standard errors"):
        fit = cbpp_model.fit("laplace")
    assert np.all(np.isnan(fit.fixed_effects()["std_error"]))
    assert np.all(np.isfinite(fit.beta)) and [f.kind for f in fit.flags] == ["nan_se"]


# 5. arguments that were not checked or not honoured
def test_sample_checks_seed_and_target_accept(cbpp_model):
    with pytest.raises(ValueError, match="random_seed must be None or a non-negative integer, got 'abc'"):
        cbpp_model.sample(draws=10, tune=10, chains=1, random_seed="abc")
    for bad in (1.5, 0, True):
        with pytest.raises(ValueError, match="target_accept must be a number in \\(0, 1\\)"):
            cbpp_model.sample(draws=10, tune=10, chains=1, target_accept=bad)


def test_maxiter_is_honoured_and_tol_accepted(cbpp_model):
    with pytest.warns(bg.ConvergenceWarning, match="did not converge"):
        fit = cbpp_model.fit("laplace", maxiter=1)
    assert not fit.converged and "not_converged" in [f.kind for f in fit.flags]
    full = cbpp_model.fit("laplace")
    assert np.max(np.abs(fit.beta - full.beta)) > 1e-3  # not the full fit's estimates
    sleep = _bundled("sleepstudy")
    assert sleep.fit("ml", tol=1e-8).beta == pytest.approx(sleep.fit("ml").beta, rel=1e-6)
    with pytest.raises(ValueError, match="maxiter must be a positive integer"):
        cbpp_model.fit("laplace", maxiter=0)
    with pytest.raises(ValueError, match="tol must be a number in"):
        cbpp_model.fit("pql", tol=-1)
    with pytest.raises(TypeError, match="method 'gee' takes the options correlation; got maxiter"):
        cbpp_model.fit("gee", maxiter=3)


@pytest.mark.parametrize("nagq", [0, 1000, 2.5, "25", True])
def test_bad_nagq_is_a_clear_error(cbpp_model, nagq):
    with pytest.raises(ValueError, match="nagq must be an integer from 1 to 201"):
        cbpp_model.fit("agq", nagq=nagq)


def test_one_row_is_too_few_rows_not_rank_deficient():
    df = pd.DataFrame({"y": [1], "x": [0.3], "g": ["a"]})
    with pytest.raises(ValueError, match="too few rows: 1 observation"):
        bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli")


def test_predict_on_an_empty_frame_is_a_clear_error(cbpp_model):
    fit = cbpp_model.fit("laplace")
    with pytest.raises(ValueError, match="new_data has no rows"):
        fit.predict(bg.datasets.load("cbpp").iloc[:0])


# 6. the singular-fit warning names the boundary
def test_singular_warning_names_sd_at_zero():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(10)], 20), "x": rng.normal(size=200)})
    df["y"] = rng.poisson(np.exp(0.5 + 0.3 * df["x"]))  # no group effect at all
    with pytest.warns(bg.ConvergenceWarning, match=r"singular fit: the SD of '\(Intercept\)' in group 'g' is "
                                                   r"estimated at 0"):
        fit = bg.GLMM("y ~ x + (1 | g)", df, family="poisson").fit("laplace")
    assert fit.singular and [f.kind for f in fit.flags] == ["singular"]


def test_singular_boundaries_names_a_correlation_at_one(cbpp_model):
    from bayesglmm.frequentist.fit import singular_boundaries

    design = _bundled("sleepstudy").design
    L = np.array([[1.0, 0.0], [0.4, 0.0]])  # the slope is a multiple of the intercept: corr = +1
    (msg,) = singular_boundaries(design, [L])
    assert "correlation of '(Intercept)' and 'Days'" in msg and "estimated at +1" in msg
    (msg,) = singular_boundaries(design, [np.array([[1.0, 0.0], [0.0, 0.0]])])
    assert "SD of 'Days'" in msg
    # an intercept SD of 0 before a slope: one message, for the SD (no "correlation +0.000 at ±1")
    (msg,) = singular_boundaries(design, [np.array([[0.0, 0.0], [0.7, 0.0]])])
    assert "SD of '(Intercept)'" in msg
    # a combination of two earlier terms: singular, with no pairwise correlation at ±1
    three = bg.GLMM("Reaction ~ Days + (Days + I(Days ** 2) | Subject)", _bundled("sleepstudy").design.data).design
    L = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.8, 0.0]])
    (msg,) = singular_boundaries(three, [L])
    assert "is a linear combination of '(Intercept)', 'Days'" in msg and "correlation matrix is singular" in msg


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayesglmm.bayes.posterior.SamplingWarning")
def test_nuts_runs_on_separated_data():
    """The warning says NUTS runs: the proper prior on the coefficient keeps the posterior proper."""
    model = _separated()
    post = model.sample(draws=150, tune=150, chains=1, random_seed=2, progressbar=False)
    fe = post.fixed_effects().set_index("term")
    assert np.all(np.isfinite(fe["estimate"])) and fe.loc["f[c]", "estimate"] > 1
    assert fe.loc["f[c]", "conf_high"] < 50  # bounded by the prior, not heading to infinity


@pytest.mark.slow
@pytest.mark.parametrize("sampler, option", [("nutpie", {"maxdepth": 2}), ("pymc", {"max_treedepth": 2})])
def test_trajectories_stopped_at_the_maximum_tree_depth_are_flagged(cbpp_model, sampler, option):
    """A step size too small for the posterior shows as trajectories cut at the maximum tree depth
    (PyMC's ``reached_max_treedepth``, nutpie's ``maxdepth_reached``): a ``treedepth`` flag and a
    warning, while ``ok`` (validity) does not change for it. Provoked by a limit of depth 2."""
    from bayesglmm.bayes.posterior import SamplingWarning

    with pytest.warns(SamplingWarning) as seen:  # sample() checks (short chains: R-hat and ESS warn too)
        post = cbpp_model.sample(draws=100, tune=100, chains=2, random_seed=3, progressbar=False,
                                 nuts_sampler=sampler, **option)
    assert any("reached the maximum tree depth" in str(w.message) for w in seen)
    d = post.diagnostics(warn=False)
    assert d["max_treedepth_share"] > 0.5
    assert [f.kind for f in post.flags].count("treedepth") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        healthy = cbpp_model.sample(draws=100, tune=100, chains=2, random_seed=3, progressbar=False,
                                    nuts_sampler=sampler)
    assert healthy.diagnostics(warn=False)["max_treedepth_share"] <= 0.01
    assert "treedepth" not in [f.kind for f in healthy.flags]


def test_a_fits_warnings_point_at_the_users_line(cbpp_model):
    with pytest.warns(bg.ConvergenceWarning, match="did not converge") as caught:
        cbpp_model.fit("laplace", maxiter=2)
    assert {w.filename for w in caught if issubclass(w.category, bg.ConvergenceWarning)} == {__file__}
