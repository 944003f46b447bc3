"""fit(blas_threads=): the frequentist fits run BLAS on the threads asked for (one by default)."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import bayesglmm as bg
from bayesglmm.frequentist import laplace  # noqa: F401  (the module whose fit_laplace is spied on)


def _blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


@pytest.mark.parametrize("threads", [1, None])
def test_the_fit_runs_blas_on_the_threads_asked_for(monkeypatch, threads):
    model = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", bg.datasets.load("cbpp"),
                    family="binomial")
    before = _blas_threads()
    seen = []
    original = laplace.fit_laplace

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return original(*args, **kwargs)

    import sys

    monkeypatch.setattr(sys.modules["bayesglmm.frequentist.fit"], "fit_laplace", spy)
    fit = model.fit("laplace", blas_threads=threads)
    assert seen and seen[0] == (before if threads is None else [1] * len(before))
    assert _blas_threads() == before and fit.blas_threads == threads  # restored afterwards
    # the same estimates either way
    assert np.allclose(fit.beta, model.fit("laplace", blas_threads=2).beta, atol=1e-8)
    assert fit.profile()  # the profile runs under the fit's limit too


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_blas_threads_must_be_a_positive_integer_or_none(bad):
    model = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)", bg.datasets.load("cbpp"),
                    family="binomial")
    with pytest.raises(ValueError, match="blas_threads must be None or a positive integer"):
        model.fit("laplace", blas_threads=bad)
