"""Issue 8: every result type speaks one protocol (tables, summary, predict, print, HTML, flags)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.results import FIXED_COLUMNS, RE_COLUMNS, SUMMARY_COLUMNS, VC_COLUMNS, Flag

from .conftest import _bundled


@pytest.fixture(scope="module")
def results(cbpp_comparison):
    """One result of each type: Posterior, Laplace, AGQ, PQL, GEE (ohio) and ML, REML (sleepstudy)."""
    ohio, sleep, cbpp = _bundled("ohio"), _bundled("sleepstudy"), cbpp_comparison.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"nuts": cbpp_comparison.results["nuts"], "laplace": cbpp.fit("laplace"), "agq": cbpp.fit("agq"),
                "pql": cbpp.fit("pql"), "gee": ohio.fit("gee"), "ml": sleep.fit("ml"), "reml": sleep.fit("reml")}


METHODS = ("nuts", "laplace", "agq", "pql", "gee", "ml", "reml")


@pytest.mark.parametrize("method", METHODS)
def test_tables_have_the_same_columns_and_signatures(results, method):
    r = results[method]
    fe = r.fixed_effects(ci=0.9)
    assert tuple(fe.columns[:len(FIXED_COLUMNS)]) == FIXED_COLUMNS
    assert np.all(fe["conf_low"] < fe["estimate"]) and np.all(fe["estimate"] < fe["conf_high"])
    vc = r.variance_components(ci=0.9)
    assert tuple(vc.columns[:len(VC_COLUMNS)]) == VC_COLUMNS
    re_ = r.random_effects(ci=0.9)
    assert tuple(re_.columns[:len(RE_COLUMNS)]) == RE_COLUMNS
    summ = r.summary(ci=0.9)
    assert tuple(summ.columns) == SUMMARY_COLUMNS
    assert len(summ) == len(fe) + len(vc)
    if method == "gee":
        assert vc.empty and re_.empty
    else:
        assert (vc["kind"] == "sd").any() and len(re_) > 0


@pytest.mark.parametrize("method", METHODS)
def test_predict_is_a_dataframe(results, method):
    r = results[method]
    data = r.model.design.data.head(5)
    pred = r.predict(data)
    assert isinstance(pred, pd.DataFrame) and list(pred.columns) == ["estimate", "std_error", "conf_low",
                                                                      "conf_high"]
    assert len(pred) == 5 and list(pred.index) == list(data.index)
    assert np.all(np.isfinite(pred["estimate"]))
    assert pred["estimate"].to_numpy() == pytest.approx(r.predict()["estimate"].to_numpy()[:5])


@pytest.mark.parametrize("method", METHODS)
def test_print_reads_like_lme4_and_html_renders(results, method):
    r = results[method]
    text = str(r)
    assert f"Formula: {r.model.formula}" in text and f"Family: {r.model.family.name}" in text
    assert "Number of obs:" in text and "Fixed effects" in text
    for term in r.model.design.fixed_names:
        assert term in text
    if method in ("laplace", "agq", "ml", "reml"):
        assert "logLik" in text and "AIC" in text and f"{r.loglik:8.1f}".strip() in text
    else:
        assert "logLik" not in text
    if method == "nuts":
        assert "R-hat" in text and "divergences" in text
    elif method != "gee":
        assert "Random effects:" in text and "Std.Dev." in text and "Pr(>|z|)" in text or "t value" in text
    page = r._repr_html_()
    assert page.count("<table") >= 1 and r.model.formula.split("~")[0].strip() in page
    assert isinstance(r.flags, list) and all(isinstance(f, Flag) for f in r.flags)
    if method == "pql":
        assert not hasattr(r, "loglik") and "penalized quasi-likelihood" in text


def test_glmm_displays_itself():
    model = _bundled("sleepstudy")
    assert "Random: ((Intercept) + Days | Subject) correlated" in str(model)
    assert "<table" in model._repr_html_()


def test_sleepstudy_summary_matches_lmer_layout(results):
    text = str(results["reml"])
    # lmer: REML criterion at convergence 1743.6; Subject (Intercept) 612.10 24.741, Days 35.07 5.922, corr 0.07
    assert "1743.6" in text and "24.74" in text and "5.922" in text and "0.07" in text


def test_group_levels_in_natural_order():
    df = pd.DataFrame({"y": np.arange(24.0) % 5, "x": np.linspace(0, 1, 24),
                       "g": [str(i) for i in range(1, 13)] * 2,
                       "h": pd.Categorical(["z", "a", "m"] * 8, categories=["z", "m", "a"]),
                       "k": [f"s{i}" for i in (1, 2, 10, 11)] * 6})
    d = bg.GLMM("y ~ x + (1 | g) + (1 | h) + (1 | k)", df).design
    assert d.random[0].levels == tuple(str(i) for i in range(1, 13))
    assert d.random[1].levels == ("z", "m", "a")
    assert d.random[2].levels == ("s1", "s2", "s10", "s11")
    block = d.random[0]
    assert all(block.levels[i] == df["g"].iloc[r] for r, i in enumerate(block.index))


def test_a_grouping_column_named_residual_is_an_ordinary_group():
    """Issue 23: the residual row was told by group == "Residual" alone, so a grouping column of that
    name gave summary() two rows labelled "sigma" (and compare merged them)."""
    from bayesglmm.results import is_residual

    df = bg.datasets.load("sleepstudy").rename(columns={"Subject": "Residual"})
    model = bg.GLMM("Reaction ~ Days + (1 | Residual)", df)
    fit = model.fit("ml")
    vc = fit.variance_components()
    assert list(is_residual(vc)) == [False, True]
    summ = fit.summary().set_index("parameter")
    assert list(summ.index) == ["(Intercept)", "Days", "sd((Intercept)|Residual)", "sigma"]
    assert summ.loc["sd((Intercept)|Residual)", "estimate"] == pytest.approx(np.sqrt(fit.covariances()[0][0, 0]))
    assert summ.loc["sigma", "estimate"] == pytest.approx(fit.dispersion)
    # the same numbers as with the column under another name (lmer: 36.01 and 30.90)
    other = bg.GLMM("Reaction ~ Days + (1 | Subject)", bg.datasets.load("sleepstudy")).fit("ml").summary()
    assert summ["estimate"].to_numpy() == pytest.approx(other["estimate"].to_numpy(), rel=1e-10)
    wide = bg.compare(model, methods="ml", profile=False, marginal=False).wide()
    assert list(wide.index) == list(summ.index)
    assert "(Intercept)" in str(fit).split("Random effects:")[1].split("Fixed effects")[0]
    assert list(bg.simulate.truth_from(fit, model).table(model)["parameter"]) == list(summ.index)
    with pytest.raises(ValueError, match="would have the labels of the residual SD"):
        bg.GLMM("Reaction ~ Days + (0 + Residual | Residual)", df.assign(Residual=df["Residual"].astype(float)))


BAD_CI = [1.5, -0.2, 0, 1, 0.0, float("nan"), True, "0.95", 95]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_table_refuses_a_ci_outside_0_1(results, method):
    """Issue 23: summary(ci=1.5) gave NaN intervals, fixed_effects(ci=-0.2) intervals with low > high
    (and a posterior took ci=0 for its default)."""
    r = results[method]
    calls = [r.fixed_effects, r.variance_components, r.random_effects, r.summary]
    if method not in ("gee", "pql", "ml", "reml"):
        calls.append(r.marginal_fixed_effects)
    calls.append(lambda ci: r.predict(ci=ci))  # every result's predict takes ci (issue 25)
    for call in calls:
        for ci in BAD_CI:
            with pytest.raises(ValueError, match=f"ci must be a probability strictly between 0 and 1.*got {ci!r}"):
                call(ci=ci)
    assert len(r.fixed_effects(ci=0.5)) == len(r.model.design.fixed_names)  # in range: fine


def test_study_functions_refuse_a_ci_outside_0_1(results):
    """The check runs before any fit or draw."""
    model, fit = results["laplace"].model, results["laplace"]
    for ci in (1.5, -0.2):
        with pytest.raises(ValueError, match="ci must be a probability"):
            bg.compare(model, methods="laplace", ci=ci)
        with pytest.raises(ValueError, match="ci must be a probability"):
            bg.simulation_study(model, n_reps=1, ci=ci, executor="serial", progress=False)
        with pytest.raises(ValueError, match="ci must be a probability"):
            bg.prior_sensitivity(model, {"a": {"sd": bg.priors.HalfNormal(1.0)}}, method="refit", ci=ci)
        with pytest.raises(ValueError, match="ci must be a probability"):
            bg.rank_levels(fit, ci=ci)
        with pytest.raises(ValueError, match="ci must be a probability"):
            bg.naive_vs_clustered(model, ci=ci)


def test_a_covariate_named_sigma_does_not_share_the_residual_label():
    """Found with issue 23: a covariate named sigma and the residual SD were both 'sigma' in summary()."""
    df = bg.datasets.load("sleepstudy").rename(columns={"Days": "sigma"})
    model = bg.GLMM("Reaction ~ sigma + (1 | Subject)", df)
    labels = model.fit("ml").summary()["parameter"].tolist()
    assert labels == ["(Intercept)", "sigma", "sd((Intercept)|Subject)", "sd(Residual)"]
    assert bg.simulate.truth_from(None, model).table(model)["parameter"].tolist() == labels


RESULT_CLASSES = ("Posterior", "MLFit", "PQLFit", "GEEFit")


def _result_class(name):
    from bayesglmm.bayes.posterior import Posterior
    from bayesglmm.frequentist.fit import MLFit, PQLFit
    from bayesglmm.frequentist.gee import GEEFit

    return {"Posterior": Posterior, "MLFit": MLFit, "PQLFit": PQLFit, "GEEFit": GEEFit}[name]


def _instance_attributes(cls) -> set:
    """The names every ``__init__`` in ``cls``'s MRO assigns to ``self`` (read from its source)."""
    import ast
    import inspect
    import textwrap

    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(init)))):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            for t in targets:
                for e in (t.elts if isinstance(t, ast.Tuple) else [t]):
                    if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "self":
                        names.add(e.attr)
    return names


@pytest.mark.parametrize("name", RESULT_CLASSES)
def test_every_result_class_defines_every_member_of_the_protocol(name):
    """House, second pass: the protocol is declared (bayesglmm.results.Result), and each result class
    defines each of its members, as a method, property or class attribute or in its __init__; the
    methods take the protocol's parameters with its defaults."""
    import inspect

    from bayesglmm.report import ResultDisplay
    from bayesglmm.results import Result

    cls = _result_class(name)
    members = Result.__protocol_attrs__
    assert {"fixed_effects", "variance_components", "random_effects", "summary", "predict", "flags", "method",
            "model", "can_profile", "_repr_html_"} <= set(members)
    assert issubclass(cls, ResultDisplay) and "__str__" not in vars(cls) and "_repr_html_" not in vars(cls)
    instance = _instance_attributes(cls)
    for member in members:
        assert hasattr(cls, member) or member in instance, f"{name} lacks {member}"
        proto = getattr(Result, member, None)
        if callable(proto) and member != "_repr_html_":
            want = inspect.signature(proto).parameters
            got = inspect.signature(getattr(cls, member)).parameters
            for p in want.values():
                if p.name == "self" or (member, p.name) == ("predict", "random_effects"):  # GEE: False, no b
                    continue
                assert p.name in got and got[p.name].default == p.default, f"{name}.{member}({p.name})"


@pytest.mark.parametrize("method", METHODS)
def test_every_result_is_a_result_and_ci_none_is_095(results, method):
    """ci=None is the default 0.95 on every table of every result (MLFit and GEEFit took 0.95,
    Posterior None)."""
    from bayesglmm.results import DEFAULT_CI, Result

    r = results[method]
    assert isinstance(r, Result) and DEFAULT_CI == 0.95
    for table in ("fixed_effects", "variance_components", "random_effects", "summary"):
        pd.testing.assert_frame_equal(getattr(r, table)(), getattr(r, table)(ci=None))
        pd.testing.assert_frame_equal(getattr(r, table)(ci=None), getattr(r, table)(ci=0.95))
    if hasattr(r, "marginal_fixed_effects"):
        pd.testing.assert_frame_equal(r.marginal_fixed_effects(ci=None), r.marginal_fixed_effects(ci=0.95))


@pytest.mark.parametrize("method", METHODS)
def test_profile_is_taken_or_refused_never_ignored(results, method):
    """House, second pass: variance_components(profile=True) and summary(profile=True) on a posterior or
    a GEE fit were accepted and ignored; every result without profile intervals (can_profile False)
    now refuses them, naming why."""
    r = results[method]
    assert r.can_profile == (method in ("laplace", "agq", "ml", "reml"))
    if r.can_profile:
        return  # tests/test_profile.py checks the intervals
    why = {"nuts": "a posterior has no profile-likelihood intervals: its intervals are the posterior's own",
           "pql": "PQL maximises no likelihood", "gee": "a GEE fit has no profile-likelihood intervals: GEE maximises "
                                                        "no likelihood"}[method]
    for call in (r.variance_components, r.summary):
        with pytest.raises(ValueError, match=why):
            call(profile=True)
        assert len(call(profile=False)) == len(call())


def test_run_method_classifies_a_run_as_compare_reports_it():
    """House, second pass: one run_method runs a method and says ok / skipped / failed, for compare, the
    simulation studies, the bootstrap and naive_vs_clustered alike."""
    from bayesglmm.results import NotApplicableError, Result, run_method

    sleep = _bundled("sleepstudy")
    run = run_method(sleep, "reml", read=lambda fit: fit.summary())
    assert run.status == "ok" and isinstance(run.result, Result) and run.result.method == "reml"
    assert run.reason == "" and run.error is None and run.seconds > 0
    assert list(run.value["parameter"])[:2] == ["(Intercept)", "Days"]
    skipped = run_method(_bundled("salamander"), "agq")
    assert skipped.status == "skipped" and isinstance(skipped.error, NotApplicableError) and skipped.result is None
    assert skipped.reason == str(skipped.error) and "single grouping factor" in skipped.reason

    def breaking(fit):
        np.linalg.cholesky(-np.eye(2))

    failed = run_method(sleep, "ml", read=breaking)  # an error in read is an error of the run
    assert failed.status == "failed" and failed.reason == "LinAlgError: Matrix is not positive definite"
    refit = run_method(sleep, "ml", data=sleep.design.data.assign(Reaction=lambda d: d["Reaction"] * 2))
    assert refit.result.fixed_effects()["estimate"].to_numpy() == pytest.approx(
        2 * sleep.fit("ml").fixed_effects()["estimate"].to_numpy(), rel=1e-5)
    with pytest.raises(TypeError, match="takes the options"):  # a mistake of the call is not an outcome
        run_method(sleep, "ml", bogus=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recorded, not shown
        singular = run_method(bg.GLMM("Reaction ~ Days + (1 | Subject) + (1 | Days)", bg.datasets.load("sleepstudy")),
                              "ml")
    assert singular.status == "ok" and any(issubclass(w.category, bg.ConvergenceWarning) for w in singular.caught)
