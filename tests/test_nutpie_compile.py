"""nutpie's compiled model with C entry points kept on disk (bayesglmm.bayes.nutpie_compile): the
same density and draws as nutpie's own compile, and a new process compiles nothing for a structure
compiled before."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bayesglmm as bg
from bayesglmm.bayes.nutpie_compile import wrapper_source


def test_wrapper_source_reads_the_user_data_layout():
    """nutpie's record: all pointers, all sizes, then each array's shape; the arrays the inner
    function takes are read at their own positions, in its argument order."""
    layout = [(1, "float64"), (0, "float64"), (2, "int64")]
    src = wrapper_source("logp", 5, None, layout, [2, 0])
    assert "ud = numba.carray(user_data_, (9,), np.uint64)" in src           # 3 + 3 + (1 + 0 + 2)
    assert "a2 = numba.carray(_void_ptr(ud[2]), (ud[5],), np.int64).reshape((ud[7], ud[8], ))" in src
    assert "a0 = numba.carray(_void_ptr(ud[0]), (ud[3],), np.float64).reshape((ud[6], ))" in src
    assert "logp_val, grad = inner(x, a2, a0)" in src
    compile(src, "<wrapper>", "exec")
    expand = wrapper_source("expand", 5, 7, layout, [1])
    assert "if dim != 5 or expanded != 7:" in expand and "reshape(())" in expand
    with pytest.raises(ValueError, match="kind"):
        wrapper_source("grad", 5, None, layout, [])


@pytest.mark.slow
def test_same_draws_as_nutpies_own_compile(small_df):
    """The density is the same PyTensor function: identical draws at the same seed, and the same
    log density and gradient at a point."""
    import nutpie

    from bayesglmm.bayes.model import build_pymc_model
    from bayesglmm.bayes.nutpie_compile import compile_nutpie

    m = bg.GLMM("y ~ x + (1 | g)", small_df, family="bernoulli")
    pm_model = build_pymc_model(m.design, m.family, m.priors, as_data=True, likelihood="fused")
    ours, theirs = compile_nutpie(pm_model), nutpie.compile_pymc_model(pm_model)
    assert ours.n_dim == theirs.n_dim
    kw = dict(draws=100, tune=100, chains=2, seed=5, progress_bar=False)
    a, b = nutpie.sample(ours, **kw), nutpie.sample(theirs, **kw)
    for name in ("beta", "1|g_sd", "1|g"):
        np.testing.assert_array_equal(a["posterior"][name].values, b["posterior"][name].values, err_msg=name)
    # with another data set swapped in, as the in-process reuse does
    other = {"y.observed": 1 - m.design.y.astype(float)} if "y.observed" in {v.name for v in ours.shared_var_keys} \
        else None
    if other is not None:
        a = nutpie.sample(ours.with_data(**other), **kw)
        b = nutpie.sample(theirs.with_data(**other), **kw)
        np.testing.assert_array_equal(a["posterior"]["beta"].values, b["posterior"]["beta"].values)


SCRIPT = textwrap.dedent("""
    import numpy as np, pandas as pd, bayesglmm as bg
    from bayesglmm.bayes import count_compilations
    g = np.repeat(np.arange(12), 6)
    x = np.random.default_rng({x_seed}).normal(size=g.size)
    rng = np.random.default_rng({seed})
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-(0.3 * x + rng.normal(0, 1, 12)[g])))).astype(int)
    df = pd.DataFrame({{"y": y, "x": x, "g": g.astype(str)}})
    model = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli")
    with count_compilations() as count:
        model.sample(draws=50, tune=50, chains=1, random_seed=1, nuts_sampler="nutpie", progressbar=False,
                     diagnose=False, marginalize={marginalize})
    # PyTensor looks BLAS's function pointers up in every process (tiny functions, by design:
    # a pointer is not cacheable); everything else must come from the disk cache
    print("COMPILED", [n for n in count.names if not n.endswith("get_gemv_pointer")])
""")


@pytest.mark.slow
@pytest.mark.parametrize("marginalize", [False, True], ids=["full", "marginalized"])
def test_a_new_process_compiles_nothing_for_a_structure_seen_before(marginalize):
    """Two fresh processes fit the same structure to different data: the second loads every
    compiled function from disk (no Numba compilation). Another response for the full model (its
    design matrices are part of its structure), another response and covariate for the marginal
    one (all its data are data)."""
    counts = []
    for seed in (1, 2):
        x_seed = seed if marginalize else 0
        out = subprocess.run([sys.executable, "-c", SCRIPT.format(seed=seed, x_seed=x_seed, marginalize=marginalize)],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        counts.append(out.stdout.split("COMPILED")[-1].strip())
    assert counts[1] == "[]", counts


LOAD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, pandas as pd, bayesglmm as bg
    from bayesglmm.bayes import nutpie_compile
    mode = sys.argv[1]
    calls = []
    compile_nutpie, load_nutpie = nutpie_compile.compile_nutpie, nutpie_compile.load_nutpie
    nutpie_compile.compile_nutpie = lambda *a, **k: calls.append("compile") or compile_nutpie(*a, **k)
    nutpie_compile.load_nutpie = (lambda *a, **k: None) if mode == "compile" else \\
        (lambda *a, **k: calls.append("load") or load_nutpie(*a, **k))
    g = np.repeat(np.arange(10), 5)
    rng = np.random.default_rng(3)
    x = rng.normal(size=g.size)
    y = (rng.uniform(size=g.size) < 1 / (1 + np.exp(-(0.5 * x + rng.normal(0, 1, 10)[g])))).astype(int)
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    post = bg.GLMM("y ~ x + (1 | g)", df, family="bernoulli").sample(
        draws=60, tune=60, chains=2, random_seed=4, progressbar=False, diagnose=False, marginalize=True)
    print("CALLS", calls)
    print("DRAWS", repr(np.round(post.idata["posterior"]["beta"].values.ravel()[:40], 12).tolist()))
""")


@pytest.mark.slow
def test_a_new_process_rebuilds_the_compiled_model_without_pytensor():
    """A process after one that compiled the structure takes its compiled model from the stored
    manifest and Numba's entry points (no compile_nutpie call, so no PyTensor rewriting), and
    samples exactly the draws of a process that compiles it."""
    def run(mode):
        out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, mode], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        lines = dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("CALLS", "DRAWS")))
        return lines["CALLS"], lines["DRAWS"]

    compiled_calls, compiled_draws = run("compile")  # stores the manifest
    assert compiled_calls == "['compile']"
    loaded_calls, loaded_draws = run("load")
    assert loaded_calls == "['load']", loaded_calls
    assert loaded_draws == compiled_draws


@pytest.mark.slow
def test_a_manifest_that_does_not_match_is_not_used(small_df, tmp_path, monkeypatch):
    """load_nutpie returns None (then the caller compiles) when the stored manifest is missing,
    names a shared array this model does not have, or another rank."""
    import json

    from bayesglmm.bayes import nutpie_compile
    from bayesglmm.bayes.compilation import StartPoints
    from bayesglmm.bayes.model import build_pymc_model

    monkeypatch.setattr(nutpie_compile, "manifest_path", lambda key: tmp_path / f"{key}.json")
    m = bg.GLMM("y ~ x + (1 | g)", small_df, family="bernoulli")
    pm_model = build_pymc_model(m.design, m.family, m.priors, as_data=True, likelihood="fused")
    starts = StartPoints(pm_model)
    assert nutpie_compile.load_nutpie(pm_model, "k", starts.fn) is None  # nothing stored
    compiled = nutpie_compile.compile_nutpie(pm_model, starts.fn, key="k")
    loaded = nutpie_compile.load_nutpie(pm_model, "k", starts.fn)
    assert loaded is not None and loaded.shape_info[0] == compiled.shape_info[0]
    import nutpie

    kw = dict(draws=30, tune=30, chains=1, seed=2, progress_bar=False)
    np.testing.assert_array_equal(nutpie.sample(loaded, **kw)["posterior"]["beta"].values,
                                  nutpie.sample(compiled, **kw)["posterior"]["beta"].values)
    stored = json.loads((tmp_path / "k.json").read_text())
    for change in ("name", "rank"):
        bad = json.loads(json.dumps(stored))
        if change == "name":
            bad["shared"][0][0] = "not_in_this_model"
        else:
            bad["shared"][0][1] += 1
        (tmp_path / "k.json").write_text(json.dumps(bad))
        assert nutpie_compile.load_nutpie(pm_model, "k", starts.fn) is None, change
    (tmp_path / "k.json").write_text(json.dumps({**stored, "key": "other"}))
    assert nutpie_compile.load_nutpie(pm_model, "k", starts.fn) is None
