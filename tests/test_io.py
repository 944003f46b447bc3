import gzip
import pickle

import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg

from .conftest import _bundled


def _same_tables(a, b, names=("fixed_effects", "variance_components", "random_effects")):
    for name in names:
        pd.testing.assert_frame_equal(getattr(a, name)(), getattr(b, name)())


def test_posterior_round_trip(tmp_path, cbpp_comparison):
    post = cbpp_comparison.results["nuts"]
    path = bg.save(post, tmp_path / "post.nc")
    back = bg.load(path)
    assert type(back) is type(post)
    for name in ("beta", "1|herd_sd", "1|herd"):
        assert np.array_equal(back.draws(name), post.draws(name))
    _same_tables(post, back)
    assert back.model.formula == post.model.formula and back.model.family == post.model.family
    pd.testing.assert_frame_equal(back.model.design.data, post.model.design.data)
    pd.testing.assert_frame_equal(back.predict(), post.predict())
    assert back.diagnostics(warn=False) == post.diagnostics(warn=False)  # rebuilds the PyMC model


@pytest.mark.parametrize("name,method", [("cbpp", "laplace"), ("salamander", "laplace"), ("cbpp", "pql"),
                                         ("sleepstudy", "reml"), ("sleepstudy", "ml"), ("ohio", "gee"),
                                         ("bacteria", "agq")])
def test_fit_round_trip(tmp_path, name, method):
    fit = _bundled(name).fit(method)
    back = bg.load(bg.save(fit, tmp_path / "fit.nc"))
    if method == "gee":
        _same_tables(fit, back, ("fixed_effects",))
        assert back.alpha == fit.alpha and back.population_averaged
    else:
        _same_tables(fit, back)
        assert (back.converged, back.method, back.nagq, back.nagq_change) == (fit.converged, fit.method, fit.nagq,
                                                                              fit.nagq_change)
        assert np.array_equal([getattr(back, "loglik", np.nan), getattr(back, "aic", np.nan)],
                              [getattr(fit, "loglik", np.nan), getattr(fit, "aic", np.nan)], equal_nan=True)
    pd.testing.assert_frame_equal(back.predict(), fit.predict())
    assert back.model.formula == fit.model.formula and type(back) is type(fit) and str(back) == str(fit)
    assert back.flags == fit.flags
    if method in ("laplace", "reml"):  # profiles start from the saved internal estimates
        pd.testing.assert_frame_equal(back.variance_components(profile=True), fit.variance_components(profile=True))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        bg.load(tmp_path / "missing.nc")
    (tmp_path / "text.nc").write_text("hello")
    with pytest.raises(ValueError, match="not a bayesglmm result file"):
        bg.load(tmp_path / "text.nc")
    with gzip.open(tmp_path / "other.bg", "wb") as fh:
        pickle.dump({"something": 1}, fh)
    with pytest.warns(FutureWarning, match="legacy pickle format"), pytest.raises(ValueError,
                                                                                  match="not a bayesglmm result file"):
        bg.load(tmp_path / "other.bg")
    with pytest.raises(TypeError, match="takes a Posterior, MLFit or GEEFit"):
        bg.save(pd.DataFrame(), tmp_path / "x.nc")


def _write(path, payload):
    with gzip.open(path, "wb") as fh:
        pickle.dump(payload, fh)


def _legacy(result, path):
    """A file as bg.save wrote it before format version 1: a gzip-compressed pickle."""
    _write(path, {"format": "bayesglmm-result", "version": bg.__version__, "kind": type(result).__name__,
                  "result": result})
    return path


def test_damaged_or_foreign_legacy_files_are_a_load_error_naming_the_path(tmp_path):
    """Issue 23: corrupt bytes gave a raw zlib.error, a file without a version KeyError 'version', another
    pickled object came back as it was, a renamed class a ModuleNotFoundError."""
    import sys
    import types

    from bayesglmm.io import LoadError

    fit = _bundled("cbpp").fit("laplace")
    good = _legacy(fit, tmp_path / "good.bg")
    raw = good.read_bytes()
    corrupt = tmp_path / "corrupt.bg"
    corrupt.write_bytes(raw[:20] + bytes(b ^ 0xFF for b in raw[20:60]) + raw[60:])
    truncated = tmp_path / "truncated.bg"
    truncated.write_bytes(raw[: len(raw) // 2])
    no_version = tmp_path / "noversion.bg"
    _write(no_version, {"format": "bayesglmm-result", "kind": "MLFit", "result": fit})
    other = tmp_path / "other.bg"
    _write(other, {"format": "bayesglmm-result", "version": bg.__version__, "kind": "MLFit", "result": [1, 2]})
    # a class that existed when the file was written and is gone now (a renamed module)
    module = types.ModuleType("bayesglmm_gone")
    exec("class OldFit:\n    pass", module.__dict__)
    sys.modules["bayesglmm_gone"] = module
    try:
        renamed = tmp_path / "renamed.bg"
        _write(renamed, {"format": "bayesglmm-result", "version": bg.__version__, "kind": "OldFit",
                         "result": module.OldFit()})
    finally:
        del sys.modules["bayesglmm_gone"]
    cases = [(corrupt, "is damaged: its compressed data are corrupt or cut short"),
             (truncated, "is damaged: its compressed data are corrupt or cut short"),
             (no_version, "incomplete bayesglmm result file: it lacks 'version'"),
             (other, "holds a list where its header says 'MLFit'"),
             (renamed, "holds a class this version does not have .*bayesglmm_gone.*load it with the bayesglmm version")]
    for path, message in cases:
        with pytest.warns(FutureWarning), pytest.raises(LoadError, match=message) as info:
            bg.load(path)
        assert str(path) in str(info.value) and isinstance(info.value, ValueError)
    with pytest.warns(FutureWarning, match=r"re-save it as data with bg.save\(bg.load"):
        assert bg.load(good).beta.tolist() == fit.beta.tolist()


def test_a_failed_checksum_is_damage(tmp_path):
    from bayesglmm.io import LoadError

    raw = _legacy(_bundled("cbpp").fit("laplace"), tmp_path / "good.bg").read_bytes()
    bad_crc = tmp_path / "crc.bg"
    bad_crc.write_bytes(raw[:-8] + bytes(b ^ 0xFF for b in raw[-8:-4]) + raw[-4:])  # the gzip trailer's CRC32
    with pytest.warns(FutureWarning), pytest.raises(LoadError, match="is damaged"):
        bg.load(bad_crc)


def test_a_legacy_fit_from_before_the_internal_frame_still_profiles(tmp_path):
    """A pickled MLFit from before today's internal parametrization lacks its internal estimates:
    the legacy reader derives them, so that profiles work as on a fresh fit."""
    fit = _bundled("sleepstudy").fit("ml")
    del fit._internal, fit._scaling
    with pytest.warns(FutureWarning):
        back = bg.load(_legacy(fit, tmp_path / "old.bg"))
    fresh = _bundled("sleepstudy").fit("ml")
    pd.testing.assert_frame_equal(back.variance_components(profile=True), fresh.variance_components(profile=True),
                                  rtol=1e-5)


@pytest.fixture()
def no_pickle(monkeypatch):
    """Every pickle entry point made to raise: loading a file must not unpickle anything."""
    def refuse(*args, **kwargs):
        raise AssertionError("bg.load used pickle")

    class Refused:
        def __init__(self, *args, **kwargs):
            raise AssertionError("bg.load used pickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", Refused)


def test_a_saved_posterior_is_data(tmp_path, cbpp_comparison, no_pickle):
    """The file is NetCDF4: xarray opens it alone (draws equal to post.idata's), ArviZ summarizes it,
    and bg.load rebuilds the posterior with pickle made to raise."""
    import arviz as az
    import xarray as xr

    post = cbpp_comparison.results["nuts"]
    path = bg.save(post, tmp_path / "post.nc")
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    tree = xr.open_datatree(path)
    for group in ("posterior", "sample_stats", "observed_data"):
        xr.testing.assert_identical(tree[group].to_dataset().drop_attrs(), post.idata[group].to_dataset().drop_attrs())
    assert tree.attrs["kind"] == "Posterior" and tree.attrs["format_version"] == 1
    assert "beta" in az.summary(tree).index[0] or len(az.summary(tree)) > 0
    back = bg.load(path)
    _same_tables(post, back)
    pd.testing.assert_frame_equal(back.predict(), post.predict())
    assert str(back) == str(post)


def test_xarray_opens_a_file_without_bayesglmm(tmp_path):
    import subprocess
    import sys

    path = bg.save(_bundled("cbpp").fit("laplace"), tmp_path / "fit.nc")
    code = ("import sys, xarray as xr; t = xr.open_datatree(sys.argv[1]); "
            "print(t['bayesglmm_fit']['beta'].values.tolist(), t['bayesglmm_model'].attrs['formula']); "
            "assert 'bayesglmm' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert "cbind(incidence, size - incidence)" in out.stdout


def test_every_fit_loads_without_pickle(tmp_path, no_pickle):
    fit = _bundled("cbpp").fit("agq")
    back = bg.load(bg.save(fit, tmp_path / "fit.nc"))
    _same_tables(fit, back)


@pytest.mark.filterwarnings("ignore:singular fit:bayesglmm.results.ConvergenceWarning")  # the data, not the fit, are tested
def test_the_data_round_trip_keeps_dtypes_names_and_index(tmp_path):
    """Columns of every kind a model's data may hold come back as they were: a Categorical grouping
    factor (its category order), strings with a missing value, booleans, nullable integers, dates,
    names with spaces, slashes and other alphabets, and a non-default index."""
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({
        "y": rng.poisson(2.0, n),
        "x / dose": rng.normal(size=n),
        "größe": rng.normal(size=n),
        "g": pd.Categorical(np.repeat(list("dcbafe"), 10), categories=list("fedcba")),
        "label": ["a"] * (n - 1) + [None],
        "flag": rng.integers(0, 2, n).astype(bool),
        "count": pd.array(list(range(n - 1)) + [None], dtype="Int64"),
        "when": pd.date_range("2020-01-01", periods=n, freq="D"),
    }, index=pd.Index(np.arange(n) * 3 + 100, name="row_id"))
    model = bg.GLMM("y ~ `x / dose` + größe + flag + (1 | g)", df, family="poisson",
                    priors={"sd": bg.priors.HalfStudentT(3, 1.5),
                            "(Intercept)": bg.priors.CenteredIntercept(bg.priors.Normal(0, 2))})
    fit = model.fit("laplace")
    back = bg.load(bg.save(fit, tmp_path / "fit.nc"))
    pd.testing.assert_frame_equal(back.model.design.data, fit.model.design.data, check_index_type=True)
    assert back.model.prior_overrides == model.prior_overrides
    assert back.model.design.random[0].levels == fit.model.design.random[0].levels == tuple("fedcba")
    _same_tables(fit, back)


def test_newer_or_altered_files_are_refused_clearly(tmp_path):
    """A file of a newer format version names the version; a file edited to name a prior class or
    a result kind outside the allowed set is refused, nothing of it run."""
    import xarray as xr

    from bayesglmm.io import LoadError

    path = bg.save(_bundled("cbpp").fit("laplace"), tmp_path / "fit.nc")

    def edited(change):
        tree = xr.open_datatree(path).load()
        change(tree)
        out = tmp_path / "edited.nc"
        tree.to_netcdf(out, engine="h5netcdf")
        return out

    def newer(t):
        t.attrs["format_version"] = 7

    def evil_prior(t):
        t["bayesglmm_model"].attrs["priors"] = '{"sd": {"class": "os.system", "params": {"command": 1}}}'

    def evil_kind(t):
        t.attrs["kind"] = "subprocess.Popen"

    def no_header(t):
        del t.attrs["bayesglmm_format"]

    cases = [(newer, "format version 7, newer than this bayesglmm"),
             (evil_prior, "names the prior class 'os.system', which is not one bg.load rebuilds"),
             (evil_kind, "says it holds a 'subprocess.Popen'"),
             (no_header, "without bayesglmm's header")]
    for change, message in cases:
        with pytest.raises(LoadError, match=message) as info:
            bg.load(edited(change))
        assert "edited.nc" in str(info.value)
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(LoadError, match="damaged or not a bayesglmm result file"):
        bg.load(truncated)
