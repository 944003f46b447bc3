"""Every call of a NUTS sampler: PyMC's ``pm.sample`` (:func:`sample_pymc`) and nutpie's
(:func:`sample_nutpie`, with the compiled-model reuse of :mod:`bayesglmm.bayes.compilation`), for
the full model (:func:`bayesglmm.bayes.posterior.sample_model`) and the marginal one
(:func:`bayesglmm.bayes.marginalized.sample_marginalized`) alike."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

from .compilation import CompiledCache, StartPoints, compiled_models, shared_values

__all__ = ["sample_pymc", "sample_nutpie", "quiet_pymc_log"]


@contextlib.contextmanager
def quiet_pymc_log():
    """PyMC's INFO log lines ("Sampling: [y]", "Initializing NUTS ...") off inside the block:
    nothing printed that the user did not ask for."""
    import logging

    log = logging.getLogger("pymc")
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


def sample_pymc(pymc_model, draws: int, tune: int, chains: int, cores: int, random_seed, target_accept: float,
                nuts_sampler: str, progressbar: bool, **kwargs):
    """``pm.sample`` of ``pymc_model``: PyMC's NUTS (``nuts_sampler="pymc"``, no convergence checks of its
    own: :meth:`~bayesglmm.bayes.posterior.Posterior.diagnostics` makes them), or another sampler PyMC
    dispatches to (numpyro, blackjax: ``target_accept`` through ``nuts={...}``). Returns the DataTree."""
    import pymc as pm

    # PyMC's INFO lines ("Initializing NUTS ...", "Sampling 2 chains ...") only beside its progress bar
    with pymc_model, (quiet_pymc_log() if not progressbar else contextlib.nullcontext()):
        if nuts_sampler == "pymc":
            with warnings.catch_warnings():  # a dense mass matrix is our default choice (marginalized), not the user's
                warnings.filterwarnings("ignore", message="QuadPotentialFullAdapt is an experimental feature")
                return pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
                                 target_accept=target_accept, nuts_sampler="pymc", progressbar=progressbar,
                                 compute_convergence_checks=False, **kwargs)
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=random_seed,
                         nuts_sampler=nuts_sampler, nuts={"target_accept": target_accept}, progressbar=progressbar,
                         **kwargs)


def sample_nutpie(build: Callable[[bool], Any], key: str | None, draws: int, tune: int, chains: int, cores: int,
                  random_seed, target_accept: float, progressbar: bool, cache: CompiledCache | None = None,
                  **kwargs):
    """Sample by nutpie the model ``build(as_data)`` builds, reusing a compiled model where one fits.

    ``key`` is the structure key of ``build(True)``'s graph, whose data (hyperparameters, response,
    and whatever else the builder makes data) are shared variables: a compiled model kept under it
    gets this model's data (``with_data``) and start points (:class:`StartPoints`), so its draws are
    those of a fresh compile of this model (tested). Else, when a process on this machine compiled
    the structure before, the compiled model is rebuilt from its stored manifest and Numba's
    on-disk entry points without PyTensor (:func:`~bayesglmm.bayes.nutpie_compile.load_nutpie`);
    failing that the graph is compiled (:func:`~bayesglmm.bayes.nutpie_compile.compile_nutpie`,
    which stores the manifest); either is kept. ``key=None`` compiles
    ``build(False)`` and keeps nothing (a graph given by the user). Returns the DataTree of
    ``pm.sample(nuts_sampler="nutpie")``: posterior, sample_stats, observed and constant data.
    """
    import time

    import nutpie
    from pymc.backends.arviz import patch_nutpie_idata
    from pymc.util import get_random_generator

    from .nutpie_compile import compile_nutpie, load_nutpie

    cache = compiled_models if cache is None else cache
    pymc_model = build(key is not None)
    kept = cache.lookup(key) if key is not None else None
    if kept is not None:  # the structure's graph: this model's data swapped in
        compiled, starts = kept
        data = shared_values(pymc_model)
        known = {var.name for var in compiled.shared_var_keys}
        missing = known - set(data)
        if missing:  # never sample with another model's data
            raise RuntimeError(f"the compiled model reads data this model does not name: {sorted(missing)}")
        compiled = compiled.with_data(**{k: v for k, v in data.items() if k in known})
        compiled = dataclasses.replace(compiled, initial_point_func=starts(data))
    else:  # this process's first model of the structure: from disk when a process compiled it before
        starts = StartPoints(pymc_model)
        compiled = load_nutpie(pymc_model, key, starts.fn) if key is not None else None
        if compiled is None:
            compiled = compile_nutpie(pymc_model, starts.fn, key=key)
        if key is not None:
            cache.keep(key, (compiled, starts))
    seed = int(get_random_generator(random_seed).spawn(chains)[0].integers(2**30))  # as pm.sample does
    if tune == 0:
        tune = 1  # nuts-rs needs one tuning step
    t0 = time.time()
    kwargs.setdefault("save_warmup", False)  # as pm.sample discards the tuning draws (half the extraction time)
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
                          progress_bar=progressbar, target_accept=target_accept, **kwargs)
    patch_nutpie_idata(idata, pymc_model, sampling_time=time.time() - t0)
    return idata
