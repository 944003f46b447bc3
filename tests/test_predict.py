import functools
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


# --- issue 25, item 5: standard errors and intervals of every ML fit's predictions ----------------
# glmmTMB's predict(fit, newdata, se.fit = TRUE) (bayesglmm/datasets/reference/predictions.R, R 4.2.2,
# glmmTMB 1.1.5). Measured here: SEs within 1.8e-6 relative, estimates within 1.1e-6 of max(1, |R's|), on
# both scales, fitting and new rows, population and conditional: the tolerances are 1e-5.
PRED_CASES = {"cbpp_laplace": ("cbpp", "binomial", "laplace"), "sleepstudy_ml": ("sleepstudy", "gaussian", "ml"),
              "sleepstudy_reml": ("sleepstudy", "gaussian", "reml"),
              "epil_offset_laplace": ("epil", "poisson", "laplace")}
SE_RTOL, ESTIMATE_TOL = 1e-5, 1e-5


@functools.cache
def _tmb_case(case):
    from bayesglmm.datasets import prediction_reference

    ref = prediction_reference()[case]
    data, family, method = PRED_CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.GLMM(ref["formula"], bg.datasets.load(data), family=family).fit(method)
    new = pd.DataFrame(ref["newdata"]).astype({c: str for c in bg.datasets.info(data).categorical
                                               if c in ref["newdata"]})
    return ref, fit, new


@pytest.mark.parametrize("where", ["fitting", "new"])
@pytest.mark.parametrize("case", list(PRED_CASES))
def test_predictions_equal_glmmtmb(case, where):
    """SEs on the link and the response scale, population level and conditional on the random effects
    (θ's uncertainty through the modes included: on sleepstudy 7% of the first row's SE), for the fitting
    rows and new rows with new levels (b = 0 and the random effect's variance). glmmTMB's REML re.form = NA
    SEs leave the random effects out (σ√(xᵀ(XᵀX)⁻¹x), the JSON's note): not compared."""
    ref, fit, new = _tmb_case(case)
    rows = None if where == "fitting" else new
    for kind, r_type in (("link", "link"), ("mean", "response")):
        for re_form in ("population", "conditional"):
            if case == "sleepstudy_reml" and re_form == "population":
                continue
            got = fit.predict(rows, kind=kind, random_effects=re_form == "conditional")
            want = ref[where][f"{r_type}_{re_form}"]
            np.testing.assert_allclose(got["std_error"], want["se"], rtol=SE_RTOL, err_msg=f"{kind} {re_form}")
            np.testing.assert_allclose(got["estimate"], want["fit"], rtol=ESTIMATE_TOL, atol=ESTIMATE_TOL)


def test_prediction_intervals_are_wald_on_the_link_scale():
    """kind="link": η̂ ± z·SE; kind="mean": those end points through g⁻¹ and the delta-method SE |dμ/dη|·SE;
    ci=None is 0.95; a bad ci or kind is an error naming the argument, before any work."""
    from scipy import stats

    _, fit, new = _tmb_case("epil_offset_laplace")
    link, mean = fit.predict(new, kind="link"), fit.predict(new)
    assert list(link.index) == list(new.index)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(link["conf_low"], link["estimate"] - z * link["std_error"], rtol=1e-14)
    np.testing.assert_allclose(link["conf_high"], link["estimate"] + z * link["std_error"], rtol=1e-14)
    np.testing.assert_allclose(mean["estimate"], np.exp(link["estimate"]), rtol=1e-14)
    np.testing.assert_allclose(mean["std_error"], np.exp(link["estimate"]) * link["std_error"], rtol=1e-14)
    np.testing.assert_allclose(mean["conf_low"], np.exp(link["conf_low"]), rtol=1e-14)
    np.testing.assert_allclose(mean["conf_high"], np.exp(link["conf_high"]), rtol=1e-14)
    half = fit.predict(new, kind="link", ci=0.5)
    np.testing.assert_allclose(half["conf_high"] - half["estimate"], stats.norm.ppf(0.75) * link["std_error"])
    pd.testing.assert_frame_equal(fit.predict(new, ci=0.95), mean)
    for bad in (1.5, 0, "0.9"):
        with pytest.raises(ValueError, match="ci must be a probability strictly between 0 and 1"):
            fit.predict(new, ci=bad)
    with pytest.raises(ValueError, match="kind must be 'mean' or 'link', got 'response'"):
        fit.predict(new, kind="response")


def test_a_new_level_adds_the_random_effect_variance():
    """Conditional SE² at a new level = population SE² + the random effect's variance (Laplace: V_β is
    the β block of the covariance of (θ, β), and b = 0 at a new level whatever θ); at a fitted level the
    conditional SE differs from both."""
    _, fit, new = _tmb_case("cbpp_laplace")
    pop = fit.predict(new, kind="link", random_effects=False)["std_error"].to_numpy()
    cond = fit.predict(new, kind="link")["std_error"].to_numpy()
    var_b = fit.covariances()[0][0, 0]
    is_new = (new["herd"] == "new").to_numpy()
    np.testing.assert_allclose(cond[is_new] ** 2, pop[is_new] ** 2 + var_b, rtol=1e-12)
    assert np.all(np.abs(cond[~is_new] ** 2 - pop[~is_new] ** 2 - var_b) > 1e-3)


def _pred_df():
    rng = np.random.default_rng(11)
    n = 240
    df = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 20, n).astype(str),
                       "h": rng.integers(0, 6, n).astype(str)})
    eta = 0.3 + 0.5 * df["x"] + rng.normal(0, 0.7, 20)[df["g"].astype(int)] + rng.normal(0, 0.4, 6)[df["h"].astype(int)]
    return df.assign(y=rng.binomial(1, 1 / (1 + np.exp(-eta))), c=rng.poisson(np.exp(eta)),
                     r=eta + rng.normal(0, 0.5, n))


def _new_rows(df):
    """Fitted levels, a fitted level with a new x, and new levels in one block or both."""
    return pd.DataFrame({"x": [0.2, -1.5, 2.5, 0.4, 1.0], "g": [df["g"].iloc[0], df["g"].iloc[5], "new", "new", "7"],
                         "h": [df["h"].iloc[0], df["h"].iloc[5], "0", "new", "new"]}, index=list("abcde"))


def _dense_z(design, rows, theta):
    """[Z Λ(θ)] of ``rows`` (a NewData) dense: the fitted levels' columns in the engines' order, then a
    column (of its own) for each row at a new level."""
    from bayesglmm.frequentist.theta import ThetaMap

    fitted, extra = [], []
    for block, index, Xr, L in zip(design.random, rows.index, rows.Xr, ThetaMap(design).factors(theta)):
        k = block.n_terms
        Zb = np.zeros((len(index), block.n_levels * k))
        Eb = np.zeros((len(index), int(np.sum(index < 0)) * k))
        for i, j in enumerate(index):
            if j >= 0:
                Zb[i, j * k:(j + 1) * k] = Xr[i] @ L
            else:
                e = int(np.sum(index[:i] < 0))
                Eb[i, e * k:(e + 1) * k] = Xr[i] @ L
        fitted.append(Zb)
        extra.append(Eb)
    return np.hstack(fitted + extra)


def _modes(design, family, theta, beta):
    from bayesglmm.frequentist.pirls import pirls
    from bayesglmm.frequentist.theta import ThetaMap

    return pirls(design, family, ThetaMap(design).ZLambda(theta), beta, tol=1e-14, utol=1e-13)


@pytest.mark.parametrize("formula,family,link,method", [
    ("y ~ x + (1 + x | g)", "bernoulli", "probit", "laplace"),   # block H, observed weights ≠ Fisher's
    ("c ~ x + (1 | g) + (1 | h)", "poisson", None, "laplace"),  # crossed: the Schur complement
    ("c ~ x + (1 + x | h) + (1 | g)", "poisson", None, "laplace"),
    ("y ~ x + (1 | g)", "bernoulli", None, "agq"),
])
def test_conditional_ses_equal_brute_force(formula, family, link, method, force_schur):
    """Var η̂ = aᵀH⁻¹a + gᵀVg against dense algebra and differences: H from the dense ZΛ with the observed
    weights (−∂²ℓ/∂η² by differences of the score), a new level a column of its own with no data, and g
    by central differences of η̂(θ, β) with the modes re-found by PIRLS at each point."""
    df = _pred_df()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.GLMM(formula, df, family=family, link=link).fit(method)
    d, fam = fit.model.design, fit.model.family
    new = _new_rows(df)
    rows = d.evaluate_new(new)
    theta, beta = fit.theta, fit.beta

    def eta_new(params):
        st = _modes(d, fam, params[:len(theta)], params[len(theta):])
        Zf = _dense_z(d, rows, params[:len(theta)])
        return rows.offset + rows.X @ params[len(theta):] + Zf[:, :len(st.u)] @ st.u

    x0 = np.concatenate([theta, beta])
    h = 1e-5
    G = np.column_stack([(eta_new(x0 + h * e) - eta_new(x0 - h * e)) / (2 * h) for e in np.eye(len(x0))])
    st = _modes(d, fam, theta, beta)
    A = _dense_z(d, d.evaluate_new(df), theta)
    eps = 1e-6
    w_obs = -(fam.score(st.eta + eps, d.y, d.trials) - fam.score(st.eta - eps, d.y, d.trials)) / (2 * eps)
    q = A.shape[1]
    Zn = _dense_z(d, rows, theta)
    H = np.eye(Zn.shape[1])  # new levels: columns with no data
    H[:q, :q] += A.T @ (w_obs[:, None] * A)
    var = np.einsum("ia,ab,ib->i", Zn, np.linalg.inv(H), Zn) + np.einsum("ij,jk,ik->i", G, fit.vcov_full, G)
    got = fit.predict(new, kind="link")
    np.testing.assert_allclose(got["std_error"], np.sqrt(var), rtol=1e-8)  # measured ≤ 7e-11
    np.testing.assert_allclose(got["estimate"], eta_new(x0), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("method", ["ml", "reml"])
def test_lmm_conditional_ses_equal_brute_force(method):
    """LMM: σ²[x; a]ᵀJ⁻¹[x; a] + dᵀV_θd, with J the dense penalized system in (β, u), d the derivative of
    the penalized least-squares η̂(θ) by differences and V_θ from second differences of model.deviance
    (the profiled criterion, an independent path to the Hessian)."""
    df = _pred_df()
    model = bg.GLMM("r ~ x + (1 + x | g) + (1 | h)", df)
    fit = model.fit(method)
    d = model.design
    dev = model.deviance(method)
    t0 = dev.params(fit)  # θ relative to σ
    k, h = len(t0), 1e-3
    E = np.eye(k) * h
    Hd = np.array([[(dev(t0 + E[i] + E[j]) - dev(t0 + E[i] - E[j]) - dev(t0 - E[i] + E[j]) + dev(t0 - E[i] - E[j]))
                    / (4 * h * h) for j in range(k)] for i in range(k)])
    V_theta = np.linalg.inv(Hd / 2)
    new = _new_rows(df)
    rows = d.evaluate_new(new)
    X, z = d.X, d.y - d.offset

    def pls(theta):
        A = _dense_z(d, d.evaluate_new(df), theta)
        J = np.block([[X.T @ X, X.T @ A], [A.T @ X, A.T @ A + np.eye(A.shape[1])]])
        sol = np.linalg.solve(J, np.concatenate([X.T @ z, A.T @ z]))
        W = np.hstack([rows.X, _dense_z(d, rows, theta)])
        q, p = A.shape[1], X.shape[1]
        Jn = np.eye(W.shape[1])  # new levels: no data
        Jn[:p + q, :p + q] = J
        return rows.offset + W[:, :p + q] @ sol, W, Jn

    eta, W, Jn = pls(t0)
    D = np.column_stack([(pls(t0 + e * 1e-5)[0] - pls(t0 - e * 1e-5)[0]) / 2e-5 for e in np.eye(k)])
    var = (fit.dispersion**2 * np.einsum("ia,ab,ib->i", W, np.linalg.inv(Jn), W)
           + np.einsum("ij,jk,ik->i", D, V_theta, D))
    got = fit.predict(new, kind="link")
    np.testing.assert_allclose(got["estimate"], eta, rtol=1e-9)
    np.testing.assert_allclose(got["std_error"], np.sqrt(var), rtol=1e-6)  # measured ≤ 8e-8 (V_θ's differences)


def test_pql_conditional_ses_take_theta_as_known():
    """PQL (no likelihood for θ): σ²[x; a]ᵀJ_W⁻¹[x; a], the working LMM's joint (β, u) covariance at the final
    weights; population level √(xᵀVx) with the fit's V."""
    from bayesglmm.frequentist.pirls import score_weights

    df = _pred_df()
    for dispersion in (None, "estimate"):
        fit = bg.GLMM("c ~ x + (1 | g)", df, family="poisson").fit("pql", dispersion=dispersion)
        d = fit.model.design
        sigma = 1.0 if fit.dispersion is None else fit.dispersion
        w = score_weights(fit.model.family, fit.predict(kind="link")["estimate"].to_numpy(), d.trials)[3]
        A = _dense_z(d, d.evaluate_new(df), fit.theta / sigma)
        X = d.X
        J = np.block([[X.T @ (w[:, None] * X), X.T @ (w[:, None] * A)], [A.T @ (w[:, None] * X),
                                                                         A.T @ (w[:, None] * A) + np.eye(A.shape[1])]])
        new = _new_rows(df)
        rows = d.evaluate_new(new)
        Wn = np.hstack([rows.X, _dense_z(d, rows, fit.theta / sigma)])
        Jn = np.eye(Wn.shape[1])
        Jn[:J.shape[0], :J.shape[0]] = J
        var = sigma**2 * np.einsum("ia,ab,ib->i", Wn, np.linalg.inv(Jn), Wn)
        np.testing.assert_allclose(fit.predict(new, kind="link")["std_error"], np.sqrt(var), rtol=1e-8)
        pop = fit.predict(new, kind="link", random_effects=False)["std_error"]
        np.testing.assert_allclose(pop, np.sqrt(np.einsum("ij,jk,ik->i", rows.X, fit.vcov, rows.X)), rtol=1e-12)


def test_gee_predictions_have_robust_ses():
    """GEE: the population-averaged prediction with √(xᵀVx), V the sandwich covariance; ci as every result's."""
    gee = _bundled("ohio").fit("gee")
    ohio = bg.datasets.load("ohio").head(4)
    X = np.column_stack([np.ones(4), ohio["age"], ohio["smoke"]])
    link = gee.predict(ohio, kind="link", ci=0.9)
    np.testing.assert_allclose(link["std_error"], np.sqrt(np.einsum("ij,jk,ik->i", X, gee.vcov, X)), rtol=1e-12)
    np.testing.assert_allclose(link["conf_high"] - link["estimate"], 1.6448536 * link["std_error"], rtol=1e-6)
    mean = gee.predict(ohio)
    assert np.all((mean["conf_low"] < mean["estimate"]) & (mean["estimate"] < mean["conf_high"]))
    with pytest.raises(ValueError, match="ci must be a probability"):
        gee.predict(ohio, ci=95)


@pytest.mark.filterwarnings("ignore:singular fit:bayesglmm.results.ConvergenceWarning")  # a singular fit is incidental here
def test_a_saved_fit_predicts_the_same_ses(tmp_path):
    """A fit read from a file keeps the user's modes only: the internal ones are rotated back
    (a centred correlated block) and PIRLS confirms them."""
    df = _pred_df().assign(x=lambda d: d["x"] + 3)  # (1 + x | g) with x far from 0: a centred block
    fit = bg.GLMM("y ~ x + (1 + x | g)", df, family="bernoulli").fit("laplace")
    back = bg.load(bg.save(fit, tmp_path / "fit.nc"))
    new = _new_rows(df)
    pd.testing.assert_frame_equal(back.predict(new), fit.predict(new), rtol=1e-7)


def test_population_predictions_need_no_grouping_column():
    """lme4's re.form = NA: the population level needs the fixed effects' columns only."""
    import bayesglmm as bg

    data = bg.datasets.load("sleepstudy")
    fit = bg.GLMM("Reaction ~ Days + (Days | Subject)", data).fit("ml")
    new = pd.DataFrame({"Days": [0.0, 4.5]})
    with_groups = fit.predict(new.assign(Subject=data["Subject"].iloc[0]), random_effects=False)
    assert np.allclose(fit.predict(new, random_effects=False).to_numpy(), with_groups.to_numpy())
    with pytest.raises(KeyError, match="Subject"):
        fit.predict(new)  # conditional predictions need it
