import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.compare import LONG_COLUMNS
from bayesglmm.marginal import marginal_coefficients

from .conftest import _bundled


@pytest.mark.slow
def test_compare_runs_all_five_methods_on_cbpp(cbpp_comparison):
    table = cbpp_comparison.table()
    assert list(table.columns[:len(LONG_COLUMNS)]) == list(LONG_COLUMNS)
    assert set(table["method"]) == {"nuts", "laplace", "agq", "pql", "gee", "agq (marginal)", "nuts (marginal)"}
    assert (table["status"] == "ok").all() and not cbpp_comparison.skipped
    per_method = table.groupby("method")["parameter"].apply(list)
    fixed = ["(Intercept)", "period[2]", "period[3]", "period[4]"]
    assert per_method["laplace"] == fixed + ["sd((Intercept)|herd)"]
    assert per_method["gee"] == fixed  # the marginal model has no variance components
    assert table["seconds"].gt(0).all()
    nuts = table[table["method"] == "nuts"]
    assert nuts["flags"].iloc[0].startswith("divergences=")


@pytest.mark.slow
@pytest.mark.parametrize("method,options", [("laplace", {}), ("agq", {"nagq": 25}), ("pql", {}),
                                            ("gee", {})])
def test_compare_rows_equal_the_stand_alone_fits(cbpp_comparison, cbpp_model, method, options):
    """Exactly: the comparison runs the same fit, not an approximation of it."""
    fit = cbpp_model.fit(method, **options)
    rows = cbpp_comparison.table().query("method == @method").set_index("parameter")
    fe = fit.fixed_effects().set_index("term")
    for col in ("estimate", "std_error", "conf_low", "conf_high"):
        assert rows.loc[list(fe.index), col].to_numpy() == pytest.approx(fe[col].to_numpy(), rel=1e-12)
    if method != "gee":
        sd = fit.variance_components()["estimate"].iloc[0]
        assert rows.loc["sd((Intercept)|herd)", "estimate"] == pytest.approx(sd, rel=1e-12)
    if method in ("laplace", "agq"):  # profile intervals for the SD
        low, high = fit.profile()[("herd", "(Intercept)")]
        assert rows.loc["sd((Intercept)|herd)", ["conf_low", "conf_high"]].tolist() == pytest.approx([low, high])
        assert rows.loc["sd((Intercept)|herd)", "interval"] == "95% profile likelihood"


@pytest.mark.slow
def test_compare_posterior_rows_are_the_posterior_tables(cbpp_comparison):
    post = cbpp_comparison.results["nuts"]
    rows = cbpp_comparison.table().query("method == 'nuts'")
    assert rows["estimate"].to_numpy()[:4] == pytest.approx(post.fixed_effects()["estimate"].to_numpy())
    assert rows["std_error"].to_numpy()[4] == pytest.approx(post.variance_components()["std_error"].iloc[0])


@pytest.mark.slow
def test_wide_markdown_html(cbpp_comparison):
    wide = cbpp_comparison.wide()
    assert list(wide.columns) == ["nuts", "laplace", "agq", "pql", "gee", "agq (marginal)", "nuts (marginal)"]
    assert list(wide.index) == ["(Intercept)", "period[2]", "period[3]", "period[4]", "sd((Intercept)|herd)"]
    assert np.isnan(wide.loc["sd((Intercept)|herd)", "gee"])
    assert wide.loc["period[2]", "laplace"] == pytest.approx(-0.992332, abs=2e-3)  # glmer: -0.99233
    md = cbpp_comparison.to_markdown()
    assert md.count("\n|") >= 6 and "gee: population-averaged" in md and "(0.307)" in md
    rows = [line for line in md.splitlines() if line.startswith("|")]
    # every row has as many unescaped cell separators as the header: the SD label's '|' is escaped
    assert "sd((Intercept)\\|herd)" in md
    assert len({len(line.replace("\\|", "").split("|")) for line in rows}) == 1
    html = cbpp_comparison._repr_html_()
    assert "<table" in html and "agq (marginal)" in html


@pytest.mark.slow
def test_forest_plot_has_a_row_per_parameter(cbpp_comparison):
    fig = cbpp_comparison.plot()
    fixed_ax, sd_ax = fig.axes[:2]
    assert [t.get_text() for t in fixed_ax.get_yticklabels()] == ["(Intercept)", "period[2]", "period[3]",
                                                                  "period[4]"]
    assert [t.get_text() for t in sd_ax.get_yticklabels()] == ["sd((Intercept)|herd)"]
    assert len(fixed_ax.lines) == 7 + 1  # a marker series per method, and the zero line
    assert len(sd_ax.lines) == 4  # nuts, laplace, agq, pql have SDs


def test_methods_that_do_not_apply_are_skipped_with_the_reason():
    cmp = bg.compare(_bundled("salamander"), methods=("laplace", "agq", "gee"), profile=False)
    table = cmp.table()
    skipped = table[table["status"] == "skipped"].set_index("method")
    assert set(skipped.index) == {"agq", "gee"}
    assert "use method='laplace'" in skipped.loc["agq", "note"]
    assert "single grouping factor" in skipped.loc["gee", "note"]
    assert list(cmp.wide().columns) == ["laplace"]
    assert "agq: skipped" in cmp.to_markdown()
    sd_rows = table.query("method == 'laplace' and kind == 'sd'")
    assert len(sd_rows) == 2 and sd_rows["conf_low"].isna().all()  # no profile asked for
    assert (sd_rows["interval"] == "none").all()


def test_compare_bad_arguments(cbpp_model):
    with pytest.raises(ValueError, match="unknown method"):
        bg.compare(cbpp_model, methods=("laplace", "hglm"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'nagg'"):
        bg.compare(cbpp_model, methods=("laplace",), nagg=3)
    with pytest.raises(TypeError, match="must be a dict"):
        bg.compare(cbpp_model, methods=("laplace",), laplace=3)
    with pytest.raises(ValueError, match="nagq must be a positive integer, got 0"):
        bg.compare(cbpp_model, methods=("agq",), nagq=0)
    with pytest.raises(ValueError, match="ci must be a probability strictly between 0 and 1"):
        bg.compare(cbpp_model, methods=("laplace",), ci=95)


def test_methods_as_a_string(cbpp_model):
    cmp = bg.compare(cbpp_model, methods="pql, gee", marginal=False)
    assert cmp.methods == ("pql", "gee") and set(cmp.results) == {"pql", "gee"}


def test_per_method_options_pass_through(cbpp_model):
    cmp = bg.compare(cbpp_model, methods=("agq", "gee"), nagq=5, gee={"correlation": "independence"},
                     marginal=False, profile=False)
    assert cmp.results["agq"].nagq == 5
    assert cmp.results["gee"].correlation == "independence"
    assert set(cmp.table()["method"]) == {"agq", "gee"}


# ------------------------------------------------------------------ marginalization

def test_marginal_coefficients_identity_and_log_links():
    """Identity link: βᴹ = β. Log link with a random intercept: only the intercept moves, by σ²/2."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"g": np.repeat(np.arange(15), 6), "x": rng.normal(size=90)})
    df["y"] = rng.poisson(np.exp(0.3 + 0.5 * df["x"]))
    df["w"] = df["y"] + rng.normal(size=90)
    beta, S = np.array([0.3, 0.5]), [np.array([[0.64]])]
    pois = bg.GLMM("y ~ x + (1 | g)", df, family="poisson").design
    got = marginal_coefficients(pois, bg.get_family("poisson"), beta, S)
    assert got == pytest.approx([0.3 + 0.32, 0.5], abs=1e-10)
    gaus = bg.GLMM("w ~ x + (1 | g)", df).design
    assert marginal_coefficients(gaus, bg.get_family("gaussian"), beta, S) == pytest.approx(beta, abs=1e-12)


def test_marginalized_glmm_is_close_to_gee_on_ohio():
    """Population-averaged by two routes agree within a fraction of an SE; the conditional β do not."""
    model = _bundled("ohio")
    fit = model.fit("laplace")
    marg = fit.marginal_fixed_effects(random_seed=1).set_index("term")
    gee = model.fit("gee").fixed_effects().set_index("term")
    cond = fit.fixed_effects().set_index("term")
    for term in gee.index:
        assert abs(marg.loc[term, "estimate"] - gee.loc[term, "estimate"]) < 0.6 * gee.loc[term, "std_error"]
    assert abs(cond.loc["(Intercept)", "estimate"] - gee.loc["(Intercept)", "estimate"]) > 1.0
    assert marg["std_error"].to_numpy() == pytest.approx(gee["std_error"].to_numpy(), rel=0.1)
    assert (marg["method"] == "laplace (marginal)").all()


def test_separation_is_flagged_not_fatal():
    """A separated term: each ML row carries the warning naming it; the marginal rows still come."""
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"g": np.repeat(np.arange(20), 10), "x": rng.choice(["a", "b", "c"], 200)})
    df["y"] = (rng.random(200) < 0.4).astype(int)
    df.loc[df["x"] == "c", "y"] = 0
    with pytest.warns(bg.SeparationWarning):
        cmp = bg.compare(bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli"), methods="laplace,gee", profile=False)
    flags = cmp.table().drop_duplicates("method").set_index("method")["flags"]
    assert flags["laplace"] == "separation: 'x[c]' (every observation with x[c] = 1 is all failures)"
    assert "'x[c]'" in flags["gee"] and "overflow" not in flags["gee"]
    assert "laplace (marginal)" in cmp.wide().columns


def test_numerical_failures_are_failed_not_skipped():
    """Issue 23: a LinAlgError is a ValueError, so compare's "cannot apply" branch caught it first and
    reported a broken fit as skipped. Only bayesglmm's own cannot-apply errors are skipped."""
    import scipy.optimize

    model = _bundled("cbpp")
    fit = model.fit

    def breaking(method, **options):
        if method == "laplace":
            np.linalg.cholesky(-np.eye(2))  # LinAlgError
        if method == "pql":  # a ValueError raised inside SciPy
            scipy.optimize.minimize(lambda x: 0.0, x0=[0.5], method="L-BFGS-B", bounds=[(1, 0)])
        if method == "agq":
            with np.errstate(all="raise"):
                np.log(np.zeros(1))  # FloatingPointError
        return fit(method, **options)

    model.fit = breaking  # an instance attribute: the class and other models are untouched
    cmp = bg.compare(model, methods="laplace,pql,agq,ml,gee", profile=False, marginal=False)
    status = cmp.table().drop_duplicates("method").set_index("method")
    assert status["status"].to_dict() == {"laplace": "failed", "pql": "failed", "agq": "failed", "ml": "skipped",
                                          "gee": "ok"}
    assert cmp.failed["laplace"] == "LinAlgError: Matrix is not positive definite"
    assert cmp.failed["pql"].startswith("ValueError: An upper bound is less than")
    assert cmp.failed["agq"].startswith("FloatingPointError: divide by zero")
    assert "for Gaussian identity-link models" in cmp.skipped["ml"] and set(cmp.skipped) == {"ml"}
    assert "laplace: FAILED — LinAlgError" in "\n".join(cmp.notes())


def test_a_repeated_method_is_refused(cbpp_model):
    with pytest.raises(ValueError, match="methods lists 'laplace' more than once"):
        bg.compare(cbpp_model, methods=["laplace", "pql", "laplace"])
    with pytest.raises(ValueError, match="methods lists 'gee' more than once"):
        bg.compare(cbpp_model, methods="gee, gee")


def test_a_marginalization_that_breaks_is_failed_or_skipped(monkeypatch):
    """House, second pass: compare's marginal rows classified an error by a helper (_cannot_apply) that
    no longer existed, so any ValueError of a marginalization raised NameError; a
    NotApplicableError is now "skipped", any other error "failed", as a method's."""
    from bayesglmm.frequentist.fit import MLFit
    from bayesglmm.results import NotApplicableError

    model = _bundled("cbpp")

    def breaking(self, **kw):
        np.linalg.cholesky(-np.eye(2))

    monkeypatch.setattr(MLFit, "marginal_fixed_effects", breaking)
    cmp = bg.compare(model, methods="laplace,gee", profile=False)
    assert cmp.failed == {"laplace (marginal)": "marginalization failed: LinAlgError: Matrix is not positive definite"}
    assert "laplace (marginal)" not in set(cmp.table()["method"]) and not cmp.skipped

    def refusing(self, **kw):
        raise NotApplicableError("no random effects to average over")

    monkeypatch.setattr(MLFit, "marginal_fixed_effects", refusing)
    cmp = bg.compare(model, methods="laplace,gee", profile=False)
    assert cmp.skipped == {"laplace (marginal)": "marginalization cannot apply: no random effects to average over"}
    assert "laplace (marginal): skipped — marginalization cannot apply" in "\n".join(cmp.notes())
