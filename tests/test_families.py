import numpy as np
import pytest
from scipy import stats

from bayesglmm.families import FAMILIES, LINKS, get_family, get_link

ETA = np.linspace(-3, 3, 13)


@pytest.mark.parametrize("name", LINKS)
def test_link_identities_and_derivative(name):
    link = get_link(name)
    eta = ETA  # every link is defined on [-3, 3] (identity gives negative means: fine for the identity itself)
    mu = link.inverse(eta)
    assert np.all(np.diff(mu) > 0) and np.all(link.inverse_deriv(eta) > 0)  # monotone increasing
    np.testing.assert_allclose(link.link(mu), eta, atol=1e-9)
    h = 1e-6
    fd = (link.inverse(eta + h) - link.inverse(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.inverse_deriv(eta), fd, rtol=1e-6, atol=1e-9)
    fd2 = (link.inverse_deriv(eta + h) - link.inverse_deriv(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.inverse_deriv2(eta), fd2, rtol=1e-6, atol=1e-9)


def test_loglik_matches_scipy():
    y = np.array([0, 1, 3, 5]); n = np.array([5, 5, 5, 5]); p = np.array([0.1, 0.3, 0.5, 0.9])
    np.testing.assert_allclose(get_family("binomial").loglik_obs(y, p, n), stats.binom.logpmf(y, n, p))
    np.testing.assert_allclose(get_family("bernoulli").loglik_obs([0, 1], [0.2, 0.7]),
                               stats.bernoulli.logpmf([0, 1], [0.2, 0.7]))
    np.testing.assert_allclose(get_family("poisson").loglik_obs(y, p * 4), stats.poisson.logpmf(y, p * 4))
    np.testing.assert_allclose(get_family("gaussian").loglik_obs(y, p, sigma=2.0), stats.norm.logpdf(y, p, 2.0))


def test_irls_weights_logit_binomial():
    fam = get_family("binomial")
    eta = np.array([0.0, 1.0]); n = np.array([1.0, 10.0])
    p = 1 / (1 + np.exp(-eta))
    np.testing.assert_allclose(fam.irls_weights(eta, n), n * p * (1 - p))


def test_unknown_family_and_link():
    with pytest.raises(ValueError, match="unknown family 'gamma'"):
        get_family("gamma")
    with pytest.raises(ValueError, match="unknown link 'logt'"):
        get_family("bernoulli", "logt")
    with pytest.raises(ValueError, match="not available for family 'poisson'"):
        get_family("poisson", "logit")
    assert set(FAMILIES) == {"bernoulli", "binomial", "poisson", "gaussian"}


@pytest.mark.parametrize("family,y,trials,msg", [
    ("bernoulli", [0, 2], None, "0/1"),
    ("poisson", [1, -1], None, "non-negative integer"),
    ("poisson", [1, 1.5], None, "non-negative integer"),
    ("binomial", [3, 6], [5, 5], "exceed the trials"),
    ("binomial", [0, 1], [0, 5], "positive integers"),
])
def test_support_validation(family, y, trials, msg):
    with pytest.raises(ValueError, match=msg):
        get_family(family).validate(np.array(y, float), None if trials is None else np.array(trials, float))


@pytest.mark.parametrize("family,link", [("bernoulli", "logit"), ("bernoulli", "probit"), ("binomial", "cloglog"),
                                         ("binomial", "probit"), ("poisson", "log"), ("poisson", "identity")])
def test_working_quantities_equal_differences_of_the_loglik(family, link):
    """Family.working: the score, observed weight (−∂²ℓ/∂η²) and ∂W/∂η against differences."""
    fam = get_family(family, link)
    rng = np.random.default_rng(1)
    eta = rng.normal(scale=0.8, size=8) + (2.0 if link == "identity" else 0.0)
    n = np.full(8, 5.0) if family == "binomial" else None
    y = rng.integers(0, 2 if family == "bernoulli" else 6, 8).astype(float)

    def ll(e):
        return fam.loglik_kernel(y, fam.link.inverse(e), n)

    h = 1e-4
    wk = fam.working(eta, y, n)
    np.testing.assert_allclose(wk.score, (ll(eta + h) - ll(eta - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(wk.obs_weight, -(ll(eta + h) - 2 * ll(eta) + ll(eta - h)) / h**2, rtol=1e-5, atol=1e-6)
    dw = (fam.working(eta + h, y, n).weight - fam.working(eta - h, y, n).weight) / (2 * h)
    np.testing.assert_allclose(wk.dweight, dw, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(wk.mean, fam.link.inverse(eta) * (1.0 if n is None else n))
    if fam.canonical:
        np.testing.assert_allclose(wk.obs_weight, wk.weight)


def test_response_kind_is_what_the_engines_ask():
    from bayesglmm.families import get_family

    kinds = {"bernoulli": "binary", "binomial": "count", "poisson": "count", "gaussian": "continuous"}
    for name, kind in kinds.items():
        f = get_family(name)
        assert f.response_kind == kind
        assert f.counts_successes == (name in ("bernoulli", "binomial"))
        assert f.needs_trials == (name == "binomial")
        assert f.has_scale == (name == "gaussian")


def test_kernel_codes_name_each_family_and_link_once():
    from bayesglmm.families import _ALLOWED, get_family

    codes = {(f, link): get_family(f, link).kernel_code for f, links in _ALLOWED.items() for link in links}
    assert codes[("gaussian", "identity")] == codes[("gaussian", "log")] == -1
    assert codes[("bernoulli", "probit")] == codes[("binomial", "probit")] == 1  # one likelihood: n trials
    assert sorted({c for (f, _), c in codes.items() if f != "gaussian"}) == [0, 1, 2, 3, 4]
