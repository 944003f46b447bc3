"""Priors as data (bayesglmm.bayes.prior_graph): each family's density against SciPy, the bounded-log
transform, the draws, and that models differing only in priors or response share one graph."""

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from scipy import stats

import bayesglmm as bg
from bayesglmm import priors as P
from bayesglmm.bayes import count_compilations
from bayesglmm.bayes.prior_graph import BoundedLog, LinearFrame, SoftplusScale, location_prior, prior_values, \
    scale_prior

S = np.array([0.05, 0.3, 1.0, 2.7, 6.0])

SCALE_CASES = [
    (P.HalfNormal(1.3), stats.halfnorm(scale=1.3).logpdf(S)),
    (P.HalfStudentT(3.0, 0.7), np.log(2) + stats.t(3.0, scale=0.7).logpdf(S)),
    (P.HalfCauchy(2.0), stats.halfcauchy(scale=2.0).logpdf(S)),
    (P.Exponential(0.5), stats.expon(scale=2.0).logpdf(S)),
    (P.Uniform(0.0, 8.0), stats.uniform(0, 8.0).logpdf(S)),
    # on the variance: the density of s = sqrt(v) is p_v(s²)·2s
    (P.InverseGamma(2.0, 1.5), stats.invgamma(2.0, scale=1.5).logpdf(S**2) + np.log(2 * S)),
    (P.InverseGamma(0.001, 0.001), stats.invgamma(0.001, scale=0.001).logpdf(S**2) + np.log(2 * S)),
]


def _logp(rv, values):
    value = pt.vector("v")
    return pm.logp(rv, value).eval({value: values})


@pytest.mark.parametrize("prior,expected", SCALE_CASES, ids=lambda c: str(c) if isinstance(c, P.Prior) else "")
def test_scale_prior_density_equals_scipy(prior, expected):
    with pm.Model(coords={"k": range(len(S))}):
        rv = scale_prior("s", [prior] * len(S), "k")
    np.testing.assert_allclose(_logp(rv, S), expected, rtol=1e-10, atol=1e-10)


def test_mixed_scale_families_in_one_vector():
    priors = [c[0] for c in SCALE_CASES[:5]]
    with pm.Model(coords={"k": range(5)}):
        rv = scale_prior("s", priors, "k")
    expected = [c[1][i] for i, c in enumerate(SCALE_CASES[:5])]
    np.testing.assert_allclose(_logp(rv, S), expected, rtol=1e-10)
    # outside the support
    assert np.all(_logp(rv, np.array([-1.0, -1.0, -1.0, -1.0, 9.0])) == -np.inf)


def test_location_prior_density_equals_scipy():
    x = np.array([-3.0, -0.2, 0.0, 1.5])
    priors = [P.Normal(0.5, 2.0), P.StudentT(3.0, -1.0, 0.5), P.Normal(0.0, 1.0), P.StudentT(7.0, 2.0, 3.0)]
    expected = [stats.norm(0.5, 2.0).logpdf(x[0]), stats.t(3.0, -1.0, 0.5).logpdf(x[1]),
                stats.norm(0, 1).logpdf(x[2]), stats.t(7.0, 2.0, 3.0).logpdf(x[3])]
    with pm.Model(coords={"k": range(4)}):
        rv = location_prior("b", priors, "k")
    np.testing.assert_allclose(_logp(rv, x), expected, rtol=1e-10)


@pytest.mark.parametrize("log_c", [-np.inf, -np.log(8.0)])
def test_bounded_log_transform_round_trip_and_jacobian(log_c):
    t, y = BoundedLog(), pt.dvector("y")
    inputs = (None, None, None, None, None, pt.as_tensor(np.full(4, log_c)), None)  # rng, size, code, a, b, log_c, start
    ys = np.array([-4.0, -0.5, 1.0, 3.0])
    s = t.backward(y, *inputs).eval({y: ys})
    np.testing.assert_allclose(t.forward(pt.as_tensor(s), *inputs).eval(), ys, rtol=1e-10, atol=1e-12)
    if np.isfinite(log_c):
        assert np.all((s > 0) & (s < 8.0))
    else:
        np.testing.assert_allclose(s, np.exp(ys))
    h = 1e-6
    numeric = np.log((t.backward(y, *inputs).eval({y: ys + h}) - t.backward(y, *inputs).eval({y: ys - h})) / (2 * h))
    np.testing.assert_allclose(t.log_jac_det(y, *inputs).eval({y: ys}), numeric, rtol=1e-6, atol=1e-7)


def test_softplus_transform_round_trip_and_jacobian():
    knee = np.array([0.25, 0.25, 1.3, 0.05])
    t, y = SoftplusScale(knee), pt.dvector("y")
    ys = np.array([-6.0, -0.5, 1.0, 8.0])
    s = t.backward(y).eval({y: ys})
    np.testing.assert_allclose(s, knee * np.log1p(np.exp(ys)), rtol=1e-12)
    np.testing.assert_allclose(t.forward(pt.as_tensor(s)).eval(), ys, rtol=1e-10, atol=1e-12)
    h = 1e-6
    numeric = np.log((t.backward(y).eval({y: ys + h}) - t.backward(y).eval({y: ys - h})) / (2 * h))
    np.testing.assert_allclose(t.log_jac_det(y).eval({y: ys}), numeric, rtol=1e-6, atol=1e-7)


def test_scale_prior_with_a_knee_samples_softplus_and_keeps_its_density():
    """The knee changes the sampled coordinate, not the prior: the transformed density is the
    prior's at s = c softplus(y) plus the log Jacobian; with a Uniform among the priors the bounded
    transform stays (the softplus has no upper bound)."""
    priors = [P.HalfNormal(1.3), P.HalfStudentT(3.0, 0.7)]
    with pm.Model(coords={"k": range(2)}) as model:
        rv = scale_prior("s", priors, "k", knee=0.25)
    assert [v.name for v in model.value_vars] == ["s_softplus__"]
    ys = np.array([-1.0, 2.0])
    s = 0.25 * np.log1p(np.exp(ys))
    expected = (stats.halfnorm(scale=1.3).logpdf(s[0]) + np.log(2) + stats.t(3.0, scale=0.7).logpdf(s[1])
                + np.sum(np.log(0.25) - np.log1p(np.exp(-ys))))
    np.testing.assert_allclose(model.compile_logp()({"s_softplus__": ys}), expected, rtol=1e-10)
    np.testing.assert_allclose(_logp(rv, s), [stats.halfnorm(scale=1.3).logpdf(s[0]),
                                              np.log(2) + stats.t(3.0, scale=0.7).logpdf(s[1])], rtol=1e-10)
    with pm.Model(coords={"k": range(2)}) as bounded:
        scale_prior("s", [P.Uniform(0.0, 8.0), P.HalfNormal(1.0)], "k", knee=0.25)
    assert [v.name for v in bounded.value_vars] == ["s_boundedlog__"]


def test_linear_frame_samples_a_whitened_vector_with_the_priors_density():
    """β = shift + C w: the model's value variable is w, its density the priors' at β plus the
    constant log |C|, and the frame maps back and forth exactly."""
    rng = np.random.default_rng(3)
    shift = np.array([0.5, -1.0, 2.0])
    chol = np.linalg.cholesky(np.array([[1.0, 0.6, -0.3], [0.6, 2.0, 0.1], [-0.3, 0.1, 0.5]]))
    frame = LinearFrame(shift, chol)
    priors = [P.Normal(0.0, 2.5), P.StudentT(3.0, 1.0, 2.0), P.Normal(0.0, 1.0)]
    with pm.Model(coords={"k": range(3)}) as model:
        location_prior("b", priors, "k", frame=frame)
    assert [v.name for v in model.value_vars] == ["b_linearframe__"]
    w = rng.normal(size=3)
    b = shift + chol @ w
    np.testing.assert_allclose(frame.forward(pt.as_tensor(b)).eval(), w, rtol=1e-10, atol=1e-12)
    expected = (stats.norm(0, 2.5).logpdf(b[0]) + stats.t(3.0, 1.0, 2.0).logpdf(b[1]) + stats.norm(0, 1).logpdf(b[2])
                + np.sum(np.log(np.diag(chol))))
    np.testing.assert_allclose(model.compile_logp()({"b_linearframe__": w}), expected, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("prior,cdf", [
    (P.HalfNormal(1.3), stats.halfnorm(scale=1.3).cdf), (P.HalfCauchy(2.0), stats.halfcauchy(scale=2.0).cdf),
    (P.Exponential(0.5), stats.expon(scale=2.0).cdf), (P.Uniform(0, 8.0), stats.uniform(0, 8.0).cdf),
    (P.HalfStudentT(3.0, 0.7), lambda s: 2 * stats.t(3.0, scale=0.7).cdf(s) - 1),
], ids=["HalfNormal", "HalfCauchy", "Exponential", "Uniform", "HalfStudentT"])
def test_scale_prior_draws_follow_the_family(prior, cdf):
    with pm.Model():
        rv = scale_prior("s", prior, None)
    draws = pm.draw(rv, draws=20_000, random_seed=3)
    assert stats.kstest(draws, cdf).pvalue > 1e-3


@pytest.mark.slow
def test_inverse_gamma_draws_are_sds():
    with pm.Model():
        rv = scale_prior("s", P.InverseGamma(3.0, 2.0), None)
    draws = pm.draw(rv, draws=20_000, random_seed=3)
    assert stats.kstest(draws**2, stats.invgamma(3.0, scale=2.0).cdf).pvalue > 1e-3


def test_prior_values_codes():
    v = prior_values([P.HalfNormal(1), P.Uniform(0, 4), P.InverseGamma(2, 1)], "scale")
    assert v["code"].tolist() == [0, 4, 5]
    assert v["log_c"][1] == pytest.approx(-np.log(4)) and np.isneginf(v["log_c"][[0, 2]]).all()
    assert prior_values(P.Normal(1, 2), "location")["mu"].shape == ()


def _compile_and_run(pmm):
    fn = pmm.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    point = pmm.initial_point()
    return fn(np.concatenate([np.ravel(point[v.name]) for v in fn._grad_vars]))


@pytest.mark.slow
def test_models_differing_in_priors_or_response_compile_once(small_df):
    """A second model with other hyperparameters and another response compiles nothing new; nor
    does a graph holding every prior family under priors of other families (prior sweeps)."""
    from bayesglmm.bayes.model import build_pymc_model

    f = "y ~ x + (1 + x || g)"
    first = bg.GLMM(f, small_df, family="bernoulli")
    flipped = small_df.assign(y=1 - small_df["y"])
    same_families = first.update(data=flipped, priors={"sd": P.HalfNormal(0.7), "x": P.Normal(0.3, 2.0)})
    other_families = first.update(data=flipped, priors={"1|g": P.InverseGamma(2, 1), "x|g": P.Uniform(0, 5),
                                                        "x": P.StudentT(3, 0, 1)})
    graphs = [first.pymc_model(), same_families.pymc_model(),
              build_pymc_model(first.design, first.family, first.priors, families="all"),
              build_pymc_model(other_families.design, other_families.family, other_families.priors, families="all")]
    counts = []
    for pmm in graphs:
        with count_compilations() as count:
            _compile_and_run(pmm)
        counts.append(count.n)
    assert counts[1] == 0 and counts[3] == 0
    # the default graph holds only the families in use: one HalfNormal, no switch, log transform
    assert "boundedlog" not in str(first.pymc_model().rvs_to_transforms.values()).lower()
    # the counter does see compilations
    import numba

    k = np.random.default_rng().integers(1 << 30)
    with count_compilations() as count:
        numba.njit(lambda x: x + k)(1.0)
    assert count.n >= 1


@pytest.mark.slow
@pytest.mark.parametrize("families", ["present", "all"])
def test_both_graphs_give_the_same_log_density(small_df, families):
    """The graph of the families in use and the graph of all families are the same density."""
    from bayesglmm.bayes.model import build_pymc_model

    m = bg.GLMM("y ~ x + (1 + x || g)", small_df, family="bernoulli",
                priors={"1|g": P.InverseGamma(2, 1), "x|g": P.Uniform(0, 5), "x": P.StudentT(3, 0, 1)})
    pmm = build_pymc_model(m.design, m.family, m.priors, families=families)
    vals = {"beta": np.array([0.2, -0.4]), "1|g_sd": np.array([0.8]), "x|g_sd": np.array([1.3])}
    rvs = [pmm[k] for k in vals]
    terms = pmm.logp(vars=rvs, jacobian=False, sum=True)
    fn = pmm.compile_fn(terms, inputs=[pmm.rvs_to_values[rv] for rv in rvs], point_fn=False)
    # value variables are on the transformed scale (β in the frame of X, the SDs on theirs): set them
    args = [pmm.rvs_to_transforms[rv].forward(pt.as_tensor(vals[rv.name]), *rv.owner.inputs).eval() for rv in rvs]
    xbar = float(m.design.X[:, 1].mean())  # the default intercept prior is at the columns' means
    expected = (stats.norm(0, 5).logpdf(0.2 + xbar * -0.4) + stats.t(3, 0, 1).logpdf(-0.4)
                + stats.invgamma(2, scale=1).logpdf(0.64) + np.log(1.6) + stats.uniform(0, 5).logpdf(1.3))
    assert float(fn(*args)) == pytest.approx(expected, rel=1e-10)


def test_free_variables_keep_their_names_under_any_prior(small_df):
    m = bg.GLMM("y ~ x + (1 + x || g)", small_df, family="bernoulli",
                priors={"1|g": P.InverseGamma(2, 1), "x|g": P.HalfCauchy(1), "x": P.StudentT(3, 0, 1)})
    assert {v.name for v in m.pymc_model().free_RVs} == {"beta", "1|g_sd", "x|g_sd", "1|g_z", "x|g_z"}


@pytest.mark.slow
def test_constant_graph_for_samplers_that_compile_their_own_copy(small_df):
    """as_data=False (used for nutpie & co.) holds no shared variables and is the same density."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import ancestors

    from bayesglmm.bayes.model import build_pymc_model

    m = bg.GLMM("y ~ x + (1 + x | g)", small_df, family="bernoulli", priors={"sd": P.HalfCauchy(1.5)})
    data, const = m.pymc_model(), build_pymc_model(m.design, m.family, m.priors, as_data=False)
    def ours(model):  # the priors' and the response's shared variables (PyMC's dim lengths aside)
        return [v for v in ancestors([model.logp()]) if isinstance(v, SharedVariable)
                and (".prior." in str(v.name) or v.name == "y.observed")]

    assert not ours(const) and len(ours(data)) >= 5
    point = data.initial_point()
    assert float(const.compile_logp()(point)) == pytest.approx(float(data.compile_logp()(point)), rel=1e-12)
