import numpy as np
import pytest
from scipy import stats

from bayesglmm.families import FAMILIES, LINKS, get_family, get_link

ETA = np.linspace(-3, 3, 13)


@pytest.mark.parametrize("name", LINKS)
def test_link_identities_and_derivative(name):
    link = get_link(name)
    # every link but the inverse is defined on [-3, 3] (identity gives negative means: fine for the identity
    # itself); the inverse link (μ = 1/η, decreasing) on η > 0
    eta = np.linspace(0.2, 3, 13) if name == "inverse" else ETA
    mu = link.inverse(eta)
    sign = -1.0 if name == "inverse" else 1.0
    assert np.all(sign * np.diff(mu) > 0) and np.all(sign * link.inverse_deriv(eta) > 0)  # monotone
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
    # the dispersion families, their θ or shape given as sigma= or set on the family
    mu = p * 4
    np.testing.assert_allclose(get_family("negativebinomial").loglik_obs(y, mu, sigma=1.7),
                               stats.nbinom.logpmf(y, 1.7, 1.7 / (1.7 + mu)), rtol=1e-12)
    np.testing.assert_allclose(get_family("nbinom2").with_dispersion(1.7).loglik_obs(y, mu),
                               stats.nbinom.logpmf(y, 1.7, 1.7 / (1.7 + mu)), rtol=1e-12)
    np.testing.assert_allclose(get_family("betabinomial").loglik_obs(y, p, n, sigma=4.0),
                               stats.betabinom.logpmf(y, n, 4.0 * p, 4.0 * (1 - p)), rtol=1e-12)
    yg = np.array([0.3, 1.0, 2.5, 7.0])
    np.testing.assert_allclose(get_family("gamma", "log").loglik_obs(yg, mu, sigma=2.5),
                               stats.gamma.logpdf(yg, 2.5, scale=mu / 2.5), rtol=1e-12)


def test_dispersion_families_keep_their_digits_at_the_poisson_and_binomial_limits():
    """θ → ∞: the negative binomial tends to the Poisson, the beta-binomial to the binomial; the
    log-likelihood must get there smoothly (a profile of θ goes there), not lose its digits to θ log θ."""
    y = np.array([0, 1, 3, 12, 40.0]); mu = np.array([0.5, 2.0, 3.0, 10.0, 35.0])
    pois = stats.poisson.logpmf(y, mu)
    for theta in (1e6, 1e9, 1e12):
        nb = get_family("negativebinomial").loglik_obs(y, mu, sigma=theta)
        np.testing.assert_allclose(nb, pois, atol=3e2 * np.max(y**2) / theta + 1e-10)
    n = np.array([5, 5, 20, 20, 50.0]); yb = np.array([0, 2, 7, 20, 13.0]); pb = np.array([0.1, 0.4, 0.3, 0.9, 0.25])
    for theta in (1e6, 1e9):
        bb = get_family("betabinomial").loglik_obs(yb, pb, n, sigma=theta)
        np.testing.assert_allclose(bb, stats.binom.logpmf(yb, n, pb), atol=1e2 * np.max(n**2) / theta + 1e-10)
    # continuous in θ across the switch to Stirling's series (θ = 100)
    below = get_family("negativebinomial").loglik_obs(y, mu, sigma=100.0 * (1 - 1e-13))
    above = get_family("negativebinomial").loglik_obs(y, mu, sigma=100.0 * (1 + 1e-13))
    np.testing.assert_allclose(below, above, rtol=0, atol=1e-11)


def test_a_dispersion_family_needs_its_dispersion_and_refuses_a_bad_one():
    nb = get_family("negativebinomial")
    assert nb.dispersion is None and nb.has_dispersion and nb.dispersion_name == "theta"
    with pytest.raises(ValueError, match="theta is not set"):
        nb.loglik_obs([1.0], [2.0])
    with pytest.raises(ValueError, match="must be positive"):
        nb.with_dispersion(-1.0)
    with pytest.raises(ValueError, match="no dispersion"):
        get_family("poisson").with_dispersion(1.0)
    assert get_family("gamma").dispersion_name == "shape" and get_family("gamma").link.name == "inverse"
    assert get_family("beta_binomial") == get_family("betabinomial") and get_family("nbinom2") == nb
    assert nb.label(0.94241) == "Negative Binomial(0.9424)" and nb.label() == "Negative Binomial"


def test_irls_weights_logit_binomial():
    fam = get_family("binomial")
    eta = np.array([0.0, 1.0]); n = np.array([1.0, 10.0])
    p = 1 / (1 + np.exp(-eta))
    np.testing.assert_allclose(fam.irls_weights(eta, n), n * p * (1 - p))


def test_unknown_family_and_link():
    with pytest.raises(ValueError, match="unknown family 'tweedie'"):
        get_family("tweedie")
    with pytest.raises(ValueError, match="unknown link 'logt'"):
        get_family("bernoulli", "logt")
    with pytest.raises(ValueError, match="not available for family 'poisson'"):
        get_family("poisson", "logit")
    assert set(FAMILIES) == {"bernoulli", "binomial", "poisson", "gaussian", "negativebinomial", "betabinomial",
                             "gamma"}


@pytest.mark.parametrize("family,y,trials,msg", [
    ("bernoulli", [0, 2], None, "0/1"),
    ("poisson", [1, -1], None, "non-negative integer"),
    ("poisson", [1, 1.5], None, "non-negative integer"),
    ("binomial", [3, 6], [5, 5], "exceed the trials"),
    ("binomial", [0, 1], [0, 5], "positive integers"),
    ("negativebinomial", [1, 2.5], None, "non-negative integer"),
    ("betabinomial", [3, 6], [5, 5], "exceed the trials"),
    ("gamma", [1.0, 0.0], None, "positive"),
])
def test_support_validation(family, y, trials, msg):
    with pytest.raises(ValueError, match=msg):
        get_family(family).validate(np.array(y, float), None if trials is None else np.array(trials, float))


@pytest.mark.parametrize("family,link", [("bernoulli", "logit"), ("bernoulli", "probit"), ("binomial", "cloglog"),
                                         ("binomial", "probit"), ("poisson", "log"), ("poisson", "identity"),
                                         ("negativebinomial", "log"), ("betabinomial", "logit"),
                                         ("betabinomial", "probit"), ("betabinomial", "cloglog"), ("gamma", "log"),
                                         ("gamma", "inverse"), ("gamma", "identity")])
def test_working_quantities_equal_differences_of_the_loglik(family, link):
    """Family.working: the score, observed weight (−∂²ℓ/∂η²) and ∂W/∂η against differences."""
    fam = get_family(family, link)
    if fam.has_dispersion:
        fam = fam.with_dispersion(2.5)
    rng = np.random.default_rng(1)
    eta = rng.normal(scale=0.8, size=8) + (2.0 if link in ("identity", "inverse") else 0.0)
    n = np.full(8, 5.0) if fam.needs_trials else None
    y = rng.integers(0, 2 if family == "bernoulli" else 6, 8).astype(float)
    if fam.response_kind == "continuous":
        y = y + 0.5

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

    kinds = {"bernoulli": "binary", "binomial": "count", "poisson": "count", "gaussian": "continuous",
             "negativebinomial": "count", "betabinomial": "count", "gamma": "continuous"}
    for name, kind in kinds.items():
        f = get_family(name)
        assert f.response_kind == kind
        assert f.counts_successes == (name in ("bernoulli", "binomial", "betabinomial"))
        assert f.needs_trials == (name in ("binomial", "betabinomial"))
        assert f.has_scale == (name == "gaussian")
        assert f.has_dispersion == (name in ("negativebinomial", "betabinomial", "gamma"))


def test_kernel_codes_name_each_family_and_link_once():
    from bayesglmm.families import _ALLOWED, get_family

    codes = {(f, link): get_family(f, link).kernel_code for f, links in _ALLOWED.items() for link in links}
    assert codes[("gaussian", "identity")] == codes[("gaussian", "log")] == -1
    assert codes[("bernoulli", "probit")] == codes[("binomial", "probit")] == 1  # one likelihood: n trials
    assert sorted({c for (f, _), c in codes.items() if f in ("bernoulli", "binomial", "poisson")}) == [0, 1, 2, 3, 4]
    # a dispersion family's pair has a code of its own (the Gamma's identity link none)
    own = [c for (f, _), c in codes.items() if get_family(f).has_dispersion and c != -1]
    assert len(own) == len(set(own)) and not set(own) & {0, 1, 2, 3, 4}
    assert codes[("gamma", "identity")] == -1
    assert sorted({c for (f, _), c in codes.items() if f != "gaussian"}) == [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_a_class_per_family_and_link_equal_hashable_and_pickled():
    import pickle

    from bayesglmm.families import _ALLOWED, Binomial, Family, Probit

    for name, links in _ALLOWED.items():
        for link in links:
            f = get_family(name, link)
            assert f.name == name and f.link.name == link
            assert f.canonical == (link == links[0] and type(f).first_link_canonical)
            assert f == get_family(name, link) and hash(f) == hash(get_family(name, link))
            back = pickle.loads(pickle.dumps(f))
            assert back == f and type(back) is type(f) and type(back.link) is type(f.link)
    assert Binomial("probit") == Binomial(Probit()) == get_family("binomial", "probit") != get_family("bernoulli", "probit")
    assert get_family("binomial") != get_family("binomial", "probit")
    with pytest.raises(TypeError, match="base class"):
        Family()


def test_a_family_pickled_as_the_old_single_dataclass_loads_as_its_class():
    """Legacy save files pickle Family(name, link) and Link(name), one dataclass each, as
    protocol 2 (bg.save) or 0 wrote them."""
    import pickle

    old2 = (b'\x80\x02]q\x00(cbayesglmm.families\nFamily\nq\x01)\x81q\x02}q\x03(X\x04\x00\x00\x00nameq\x04X\x08'
            b'\x00\x00\x00binomialq\x05X\x04\x00\x00\x00linkq\x06cbayesglmm.families\nLink\nq\x07)\x81q\x08}q\th\x04X'
            b'\x06\x00\x00\x00probitq\nsbubh\x01)\x81q\x0b}q\x0c(h\x04X\x07\x00\x00\x00poissonq\rh\x06h\x07)\x81q\x0e}'
            b'q\x0fh\x04X\x03\x00\x00\x00logq\x10sbube.')
    old0 = (b'ccopy_reg\n_reconstructor\np0\n(cbayesglmm.families\nFamily\np1\nc__builtin__\nobject\np2\nNtp3\nRp4\n'
            b'(dp5\nVname\np6\nVgaussian\np7\nsVlink\np8\ng0\n(cbayesglmm.families\nLink\np9\ng2\nNtp10\nRp11\n(dp12\ng6'
            b'\nVlog\np13\nsbsb.')
    binomial, poisson = pickle.loads(old2)
    assert binomial == get_family("binomial", "probit") and type(binomial) is type(get_family("binomial"))
    assert poisson == get_family("poisson") and poisson.kernel_code == 3
    assert pickle.loads(old0) == get_family("gaussian", "log")


def test_irls_weights_are_the_working_weights():
    for name in FAMILIES:
        fam = get_family(name)
        eta = np.linspace(0.2, 2, 5) if fam.link.name == "inverse" else np.linspace(-2, 2, 5)  # 1/η: η > 0
        fam = fam.with_dispersion(3.0) if fam.has_dispersion else fam
        n = np.arange(1.0, 6.0) if fam.needs_trials else None
        np.testing.assert_array_equal(fam.irls_weights(eta, n), fam.working(eta, np.zeros(5), n).weight)
