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
    path = bg.save(post, tmp_path / "post.bg")
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
                                         ("sleepstudy", "reml"), ("ohio", "gee"), ("bacteria", "agq")])
def test_fit_round_trip(tmp_path, name, method):
    fit = _bundled(name).fit(method)
    back = bg.load(bg.save(fit, tmp_path / "fit.bg"))
    if method == "gee":
        _same_tables(fit, back, ("fixed_effects",))
        assert back.alpha == fit.alpha and back.population_averaged
    else:
        _same_tables(fit, back)
        assert (back.converged, back.method, back.nagq) == (fit.converged, fit.method, fit.nagq)
        assert np.array_equal([getattr(back, "loglik", np.nan), getattr(back, "aic", np.nan)],
                              [getattr(fit, "loglik", np.nan), getattr(fit, "aic", np.nan)], equal_nan=True)
    pd.testing.assert_frame_equal(back.predict(), fit.predict())
    assert back.model.formula == fit.model.formula


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        bg.load(tmp_path / "missing.bg")
    (tmp_path / "text.bg").write_text("hello")
    with pytest.raises(ValueError, match="not a bayesglmm result file"):
        bg.load(tmp_path / "text.bg")
    with gzip.open(tmp_path / "other.bg", "wb") as fh:
        pickle.dump({"something": 1}, fh)
    with pytest.raises(ValueError, match="not a bayesglmm result file"):
        bg.load(tmp_path / "other.bg")
    with pytest.raises(TypeError, match="takes a Posterior, MLFit or GEEFit"):
        bg.save(pd.DataFrame(), tmp_path / "x.bg")


def _write(path, payload):
    with gzip.open(path, "wb") as fh:
        pickle.dump(payload, fh)


def test_damaged_or_foreign_files_are_a_load_error_naming_the_path(tmp_path):
    """Issue 23: corrupt bytes gave a raw zlib.error, a file without a version KeyError 'version', another
    pickled object came back as it was, a renamed class a ModuleNotFoundError."""
    import sys
    import types

    from bayesglmm.io import LoadError

    fit = _bundled("cbpp").fit("laplace")
    good = bg.save(fit, tmp_path / "good.bg")
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
        with pytest.raises(LoadError, match=message) as info:
            bg.load(path)
        assert str(path) in str(info.value) and isinstance(info.value, ValueError)
    assert bg.load(good).beta.tolist() == fit.beta.tolist()


def test_a_failed_checksum_is_damage(tmp_path):
    from bayesglmm.io import LoadError

    raw = bg.save(_bundled("cbpp").fit("laplace"), tmp_path / "good.bg").read_bytes()
    bad_crc = tmp_path / "crc.bg"
    bad_crc.write_bytes(raw[:-8] + bytes(b ^ 0xFF for b in raw[-8:-4]) + raw[-4:])  # the gzip trailer's CRC32
    with pytest.raises(LoadError, match="is damaged"):
        bg.load(bad_crc)
