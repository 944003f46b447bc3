"""nutpie's compiled model reused by structure (bayesglmm.bayes.compilation): a later model of the
same structure samples without compiling and gets exactly the draws a fresh compile gives it."""

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm import priors as P
from bayesglmm.bayes.compilation import CompiledCache, array_digest, compiled_models
from bayesglmm.bayes.model import structure_key

KW = dict(draws=150, tune=150, chains=2, random_seed=3, nuts_sampler="nutpie", progressbar=False, diagnose=False)


def _draws(post, names):
    return {n: np.asarray(post.idata["posterior"][n].values) for n in names}


@pytest.mark.slow
@pytest.mark.parametrize("marginalize", [False, True], ids=["full", "marginalized"])
def test_reused_compiled_model_gives_a_fresh_compiles_draws(small_df, marginalize):
    """The first model of a structure compiles its shared-data graph; every later one reuses it
    with its own data and start points swapped in: the draws equal those of its own fresh compile.
    Model B differs from A in its priors and its response (marginalized: so its distinct groups,
    its frame and its knee differ too)."""
    f = "y ~ x + (1 | g)"
    a = bg.GLMM(f, small_df, family="bernoulli")
    rng = np.random.default_rng(0)
    flipped = small_df.assign(y=np.where(rng.uniform(size=len(small_df)) < 0.3, 1 - small_df["y"], small_df["y"]))
    b = bg.GLMM(f, flipped, family="bernoulli", priors={"sd": P.HalfNormal(0.6), "x": P.Normal(0.4, 1.5)})
    kw = dict(KW, marginalize=marginalize, **({"nagq": 7} if marginalize else {}))
    names = ["beta", "1|g_sd", "1|g"]

    compiled_models.clear()
    fresh = _draws(b.sample(**kw), names)                # B's own compile
    compiled_models.clear()
    first_a = _draws(a.sample(**kw), names)              # A's compile, kept
    misses, hits = compiled_models.misses, compiled_models.hits
    reused = _draws(b.sample(**kw), names)               # B reuses A's compiled model
    again_a = _draws(a.sample(**kw), names)
    assert (compiled_models.misses, compiled_models.hits) == (misses, hits + 2) and len(compiled_models) == 1
    for n in names:
        np.testing.assert_array_equal(reused[n], fresh[n], err_msg=n)
        np.testing.assert_array_equal(again_a[n], first_a[n], err_msg=n)
    # and B's posterior is not A's: the priors and the response did change
    assert not np.allclose(first_a["beta"], reused["beta"])


@pytest.mark.slow
def test_a_sweep_reuses_one_compiled_model(small_df):
    """A prior sweep's graphs (``families="all"``) are one structure: the second refit, with
    another prior family, reuses the first one's compiled model."""
    from bayesglmm.bayes.posterior import sample_model

    m = bg.GLMM("y ~ x + (1 | g)", small_df, family="bernoulli")
    compiled_models.clear()
    sample_model(m, families="all", **{k: v for k, v in KW.items() if k != "diagnose"})
    hits = compiled_models.hits
    other = m.update(priors={"sd": P.Exponential(2.0)})
    sample_model(other, families="all", **{k: v for k, v in KW.items() if k != "diagnose"})
    assert compiled_models.hits == hits + 1 and len(compiled_models) == 1


def test_marginal_structure_key_ignores_the_data(small_df):
    """The marginal graph holds its data (response, distinct groups, frame, knee) as shared
    variables: another response or covariate values give the same key; the formula, the family
    or a prior family do not."""
    from bayesglmm.bayes.marginalized import marginal_structure_key

    def key(formula="y ~ x + (1 | g)", data=small_df, framed=True, **kw):
        m = bg.GLMM(formula, data, **{"family": "bernoulli", **kw})
        return marginal_structure_key(m.design, m.family, m.priors, framed)

    base = key()
    assert key(data=small_df.assign(y=1 - small_df["y"], x=small_df["x"] * 3)) == base
    assert key(data=small_df.iloc[: len(small_df) // 2]) == base
    assert key(priors={"sd": P.HalfNormal(0.3)}) == base
    assert key(framed=False) != base
    assert key(link="probit") != base
    assert key(priors={"sd": P.HalfCauchy(1.0)}) != base
    assert key("y ~ 1 + (1 | g)") != base
    assert key("y ~ x + (1 + x | g)") != key("y ~ x + (1 + x || g)")


def test_structure_key_separates_what_the_graph_holds(small_df):
    """Equal keys: the response and hyperparameters of the same families (shared data).
    Different keys: the design, the link, a prior family, the random-effect structure."""
    def key(formula="y ~ x + (1 | g)", data=small_df, **kw):
        m = bg.GLMM(formula, data, **{"family": "bernoulli", **kw})
        return structure_key(m.design, m.family, m.priors)

    base = key()
    assert key(data=small_df.assign(y=1 - small_df["y"])) == base
    assert key(priors={"sd": P.HalfNormal(0.3), "x": P.Normal(1.0, 2.0)}) == base
    assert key(data=small_df.assign(x=small_df["x"] * 2)) != base
    assert key(link="probit") != base
    assert key(priors={"sd": P.HalfCauchy(1.0)}) != base
    assert key(priors={"x": P.StudentT(3, 0, 1)}) != base
    assert key("y ~ x + (1 | h)") != base
    assert key("y ~ x + (1 + x | g)") != key("y ~ x + (1 + x || g)")
    m = bg.GLMM("y ~ x + (1 | g)", small_df, family="bernoulli")
    assert structure_key(m.design, m.family, m.priors, "all") != base


def test_compiled_cache_is_least_recently_used_and_can_be_off():  # noqa: D103
    cache = CompiledCache(maxsize=2)
    made = []

    def compile_as(name):
        return lambda: made.append(name) or name

    assert cache.get("a", compile_as("a")) == ("a", False)
    assert cache.get("b", compile_as("b")) == ("b", False)
    assert cache.get("a", compile_as("a")) == ("a", True)       # a is now the most recent
    cache.get("c", compile_as("c"))                              # drops b
    assert set(cache.entries) == {"a", "c"} and made == ["a", "b", "c"]
    assert (cache.hits, cache.misses) == (1, 3)
    off = CompiledCache(maxsize=0)
    off.get("a", compile_as("a")), off.get("a", compile_as("a"))
    assert len(off) == 0 and off.misses == 2
    cache.clear()
    assert len(cache) == 0


def test_array_digest_sees_dtype_shape_and_values():
    x = np.arange(6.0)
    assert array_digest(x) == array_digest(x.copy())
    assert array_digest(x) != array_digest(x.reshape(2, 3))
    assert array_digest(x) != array_digest(x.astype(np.float32))
    y = x.copy()
    y[3] += 1e-12
    assert array_digest(x) != array_digest(y)
    assert array_digest("a", None, (1, 2)) != array_digest("a", None, (1, 3))
