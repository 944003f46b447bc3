"""fit("agq") without nagq chooses its nodes: the default rule, then more until the
log-likelihood at the estimates settles (frequentist.fit.fit_agq_settled, on the ladder and walk
of frequentist.agq that marginalize=True shares)."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.frequentist.agq import NAGQ_LADDER, settle_nagq
from bayesglmm.frequentist.fit import NAGQ_FIT_TOL
from bayesglmm.results import ConvergenceWarning


def _hard(seed=1, J=200, sd=4.0):
    """Lesaffre & Spiessens (2001)'s hard case: a random-intercept SD of 4 and 2–5 binary records a
    group (200 groups; the SD comes out 4.99)."""
    rng = np.random.default_rng(seed)
    m = rng.integers(2, 6, size=J)
    g = np.repeat(np.arange(J), m)
    x = rng.normal(size=len(g))
    b = rng.normal(scale=sd, size=J)
    y = rng.binomial(1, 1 / (1 + np.exp(-(-0.5 + 0.5 * x + b[g]))))
    return bg.GLMM("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="bernoulli")


@pytest.fixture(scope="module")
def hard():
    return _hard()


def _bundled(name, formula=None):
    meta = bg.datasets.info(name)
    return bg.GLMM(formula or meta.formula, bg.datasets.load(name), family=meta.family)


def test_the_default_climbs_until_the_loglik_settles(hard):
    """25 nodes stop 8.7e-3 below the likelihood; the default climbs to 71 (the next rules evaluated
    at the 25-node estimates: +6.8e-3, +2.2e-3, −3.8e-4, +5.3e-6, −5.8e-7 from 25 to 100 nodes; one
    refit at 71, within 5.7e-7 of 100 there) and equals the 100-node fit to 1e-6."""
    fit = hard.fit("agq")
    at25, at100 = hard.fit("agq", nagq=25), hard.fit("agq", nagq=100)
    assert fit.nagq == 71 and fit.nagq_change < NAGQ_FIT_TOL
    assert fit.nagq_change == pytest.approx(5.7e-7, rel=0.05)
    assert abs(fit.loglik - at100.loglik) < 1e-6
    assert fit.loglik - at25.loglik == pytest.approx(8.68e-3, abs=1e-4)
    assert np.allclose(fit.beta, at100.beta, atol=1e-5) and np.allclose(fit.theta, at100.theta, atol=1e-4)
    assert not [f for f in fit.flags if f.kind == "quadrature"]
    assert "nAGQ = 71" in str(fit)


def test_an_explicit_nagq_is_taken_as_it_is(hard):
    """nagq=25 fits at 25 nodes, as before the choice (its log-likelihood as measured then), and
    is not checked: no change, no flag."""
    fit = hard.fit("agq", nagq=25)
    assert fit.nagq == 25 and fit.nagq_change is None and not fit.flags
    assert fit.loglik == pytest.approx(-333.2566410252, abs=1e-8)
    assert "nAGQ = 25" in str(fit)
    assert hard.fit("laplace").nagq_change is None


def test_bundled_data_that_settle_at_the_default_keep_its_fit():
    """cbpp: 25 nodes are within 1e-13 of 31 at the estimates: the default fit is the 25-node fit,
    one evaluation dearer."""
    model = _bundled("cbpp")
    fit, at25 = model.fit("agq"), model.fit("agq", nagq=25)
    assert fit.nagq == 25 and fit.nagq_change < 1e-10
    assert fit.loglik == at25.loglik and np.array_equal(fit.beta, at25.beta)


def test_ohio_needs_more_than_25_nodes():
    """ohio (SD 2.2, four binary records a child): 25 nodes put the maximum 4.0e-4 too high (and so
    does glmer's nAGQ = 25, which test_agq compares with nagq=25 given); the default takes 51."""
    model = _bundled("ohio")
    fit, at25 = model.fit("agq"), model.fit("agq", nagq=25)
    assert fit.nagq == 51 and fit.nagq_change < NAGQ_FIT_TOL
    assert fit.loglik - at25.loglik == pytest.approx(-4.0e-4, abs=0.2e-4)


def test_a_rule_that_does_not_settle_is_flagged(hard, monkeypatch):
    """With the ladder capped at 31 nodes the hard case cannot settle: the fit is the 31-node one,
    with a ``quadrature`` flag and a ConvergenceWarning saying by how much and what to do."""
    monkeypatch.setitem(NAGQ_LADDER, 1, (7, 11, 15, 21, 25, 31))
    with pytest.warns(ConvergenceWarning, match=r"did not settle.* by 0\.0068 between 25 and 31 nodes") as caught:
        fit = hard.fit("agq")
    assert fit.nagq == 31 and fit.nagq_change == pytest.approx(6.8e-3, rel=0.01)
    flags = [f for f in fit.flags if f.kind == "quadrature"]
    assert len(flags) == 1 and "give a larger nagq=" in flags[0].message
    assert sum("did not settle" in str(w.message) for w in caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert hard.fit("agq", nagq=31).nagq_change is None  # given: not checked, not flagged


def test_a_block_of_two_terms_climbs_its_own_ladder():
    """ohio (1 + age | id): 11² nodes, then 15², 21², the ladder's last for two terms; still 0.021
    apart there (as marginalize=True finds, test_marginalized): flagged, with the remedy."""
    model = _bundled("ohio", "resp ~ age + smoke + (1 + age | id)")
    with pytest.warns(ConvergenceWarning, match="between 15 and 21 nodes per dimension"):
        fit = model.fit("agq")
    assert fit.nagq == 21 == NAGQ_LADDER[2][-1] and fit.nagq_change == pytest.approx(0.021, abs=0.002)
    assert [f.kind for f in fit.flags] == ["quadrature"]


def test_compare_lets_agq_choose_and_notes_the_nodes(hard):
    cmp = bg.compare(hard, methods=("agq",), profile=False)
    assert cmp.results["agq"].nagq == 71
    assert "nagq=71" in cmp.table()["note"].iloc[0]


def test_settle_nagq_walks_as_far_as_needed():
    """The first rule within tol of the next; the larger rules evaluated only as far as needed;
    values at hand not recomputed; at the last rule, its change from the one before."""
    asked = []

    def loglik(q):
        asked.append(q)
        return 1.0 - 2.0 ** -q

    assert settle_nagq(loglik, (1, 2, 4, 8, 16), tol=0.01, known={1: 0.5}) == (8, pytest.approx(2 ** -8 - 2 ** -16))
    assert asked == [2, 4, 8, 16]
    q, change = settle_nagq(loglik, (1, 2, 4), tol=1e-9)
    assert q == 4 and change == pytest.approx(0.25 - 1 / 16)
    q, change = settle_nagq(lambda q: [0.0, 1.0 / q], (1, 2, 10), tol=0.45)  # several points: the largest change
    assert (q, change) == (2, pytest.approx(0.4))
