"""Design + family + priors → a PyMC model.

Random effects are non-centred, ``b = (z * sd) @ L_corrᵀ`` with ``z ~ N(0, 1)``, and
enter the linear predictor by integer group indexing (``b[index] * Xr``) rather
than a dense Z product. The sampler moves the fixed effects in the orthonormal frame of X
(:func:`fixed_frame`: the free variable is ``beta_linearframe__``); their priors are on β itself.
Variable names:

=================================  ==============================================
``beta``                           fixed effects, dims ``("fixed",)``
``{label}_sd``                     SDs of a random block, e.g. ``"1|herd_sd"``
``{label}_corr_chol``              LKJ Cholesky factor of a correlated block
``{label}_corr``                   its correlation matrix (deterministic)
``{label}_z``                      standardised effects, dims ``(level, term)``
``{label}``                        the random effects b (deterministic), e.g. ``"1|herd"``
``sigma``                          Gaussian residual SD
``y``                              the observed response, dims ``("obs",)``
``y_loglik``                       instead of ``y`` with ``likelihood="fused"``: its
                                   log-likelihood as a potential (the sampler's graph)
=================================  ==============================================

The priors' hyperparameters and the observed response are shared variables, not constants (see
:mod:`bayesglmm.bayes.prior_graph`): models that differ only in those build the same graph, and
the second reuses the first one's compiled code.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from ..design import Design
from ..families import Family
from ..priors import ResolvedPriors
from ..scaling import column_frame
from .prior_graph import LinearFrame, lkj_eta, location_prior, scale_prior

__all__ = ["build_pymc_model", "block_coords", "block_scale", "fixed_frame", "fused_likelihood", "inverse_link", "linear_predictor",
           "structure_key"]


# The one table that translates the numpy family layer to PyTensor.
_INVERSE_LINK = {
    "logit": pt.sigmoid,
    "probit": lambda eta: 0.5 * pt.erfc(-eta / np.sqrt(2.0)),
    "cloglog": lambda eta: -pt.expm1(-pt.exp(eta)),
    "log": pt.exp,
    "identity": lambda eta: eta,
    "inverse": lambda eta: 1.0 / eta,
}


def inverse_link(family: Family, eta):
    """μ = g⁻¹(η) as a PyTensor expression."""
    return _INVERSE_LINK[family.link.name](eta)


def observed_values(family: Family, y) -> np.ndarray:
    """The response as the graph's data holds it (int64 counts, float otherwise)."""
    return np.asarray(y, dtype=float if family.response_kind == "continuous" else np.int64)


def fused_likelihood(family: Family) -> bool:
    """Whether the family's log-likelihood has the fused Op (:mod:`bayesglmm.bayes.loglik_op`):
    a canonical-link binomial or Poisson response."""
    from .loglik_op import FUSED_CODES

    return family.kernel_code in FUSED_CODES


def _fused_likelihood(family: Family, design: Design, eta, as_data: bool):
    """The log-likelihood as the potential ``y_loglik`` of the fused Op: response and constant
    shared data (``y.observed``, ``y.loglik_constant``) when ``as_data``."""
    from .loglik_op import glm_loglik, loglik_constant

    y = np.asarray(design.y, dtype=float)
    const = np.asarray(loglik_constant(family, design.y, design.trials))
    if as_data:
        y, const = pytensor.shared(y, name="y.observed"), pytensor.shared(const, name="y.loglik_constant")
    n = np.ones(design.nobs) if design.trials is None else np.asarray(design.trials, dtype=float)
    return pm.Potential("y_loglik", glm_loglik(family.kernel_code, eta, y, n, const))


def _likelihood(family: Family, design: Design, eta, sigma, y):
    """The observed variable ``y``, chosen by what the family answers (never by its name); ``sigma``
    the Gaussian σ or a dispersion family's θ or shape."""
    if family.has_dispersion:  # the family makes its own PyMC variable
        return family.pymc_observed("y", inverse_link(family, eta), sigma, design.trials, y, "obs")
    if family.counts_successes:  # a probability: by its logit on the canonical link
        kw = {"logit_p": eta} if family.canonical else {"p": inverse_link(family, eta)}
        if family.needs_trials:
            return pm.Binomial("y", n=design.trials.astype(np.int64), observed=y, dims="obs", **kw)
        return pm.Bernoulli("y", observed=y, dims="obs", **kw)
    if family.has_scale:
        return pm.Normal("y", mu=inverse_link(family, eta), sigma=sigma, observed=y, dims="obs")
    return pm.Poisson("y", mu=inverse_link(family, eta), observed=y, dims="obs")


def dispersion_variable(family: Family, priors: ResolvedPriors, families: str = "present", as_data: bool = True):
    """A dispersion family's θ or shape as the deterministic ``theta``/``shape`` = 1/δ², δ the
    sampled ``dispersion_scale`` (1/√θ, 1/√shape) with the prior ``priors.dispersion``. Inside a
    model context."""
    delta = scale_prior("dispersion_scale", priors.dispersion, None, families, as_data)
    return pm.Deterministic(family.dispersion_name, 1.0 / pt.square(delta))


def linear_predictor(design: Design, beta, random_effects):
    """η = offset + X β + Σ_blocks Σ_t Xr[:, t] · b[index, t] as a PyTensor expression.

    Parameters
    ----------
    design : Design
    beta : tensor, shape (p,)
    random_effects : list of tensors, each (n_levels, n_terms), in ``design.random`` order
    """
    eta = pt.as_tensor_variable(design.offset)
    if design.X.shape[1]:
        eta = eta + pt.dot(pt.as_tensor_variable(design.X), beta)
    for block, b in zip(design.random, random_effects):
        if block.n_terms == 1 and np.all(block.Xr == 1.0):
            # a vector gathered (and, in the gradient, scattered) by the index: 20% of the log density's
            # time for ohio against the rows of the (levels, 1) matrix
            eta = eta + b[:, 0][block.index]
        else:
            eta = eta + pt.sum(b[block.index] * pt.as_tensor_variable(block.Xr), axis=1)
    return eta


def block_coords(block) -> dict:
    """The coordinates of a random block: its levels, its terms (twice for a correlation matrix)."""
    coords = {f"{block.group}_level": list(block.levels), f"{block.label}_term": list(block.terms)}
    if block.has_correlation:
        coords[f"{block.label}_term_bis"] = list(block.terms)
    return coords


def block_scale(block, sd_priors, corr, families: str = "present", as_data: bool = True, knee=None):
    """A random block's SDs ``{label}_sd`` and, for a correlated block, the LKJ Cholesky factor
    ``{label}_corr_chol`` of its correlation (with ``{label}_corr`` as a deterministic; else None):
    the effects are b_j = diag(sd) L z_j, so Cov(b_j) = D R D. Inside a model context. ``knee``: the
    SDs' transform (:func:`~bayesglmm.bayes.prior_graph.scale_prior`)."""
    term_dim = f"{block.label}_term"
    sd = scale_prior(f"{block.label}_sd", sd_priors, term_dim, families, as_data, knee=knee)
    if corr is None:
        return sd, None
    eta = lkj_eta(f"{block.label}_corr", corr, as_data)
    chol = pm.LKJCorr(f"{block.label}_corr_chol", n=block.n_terms, eta=eta)
    pm.Deterministic(f"{block.label}_corr", pt.dot(chol, chol.T), dims=(term_dim, f"{block.label}_term_bis"))
    return sd, chol


def fixed_frame(design: Design) -> LinearFrame | None:
    """The frame NUTS moves β in: β = A w, X A with orthogonal columns of root-mean-square 1
    (:func:`bayesglmm.scaling.column_frame`), so that the sampler's coordinates, its jitter and its
    step sizes do not depend on where or in what units a covariate is measured (a year-valued
    covariate makes the raw intercept and slope correlated −0.9999; the posterior is the same,
    the geometry NUTS sees is not). None for an intercept-only X (nothing to change)."""
    frame = column_frame(design.X)
    if design.X.shape[1] == 1 and frame.A[0, 0] == 1.0:
        return None
    return LinearFrame(np.zeros(design.X.shape[1]), frame.A, log_det=frame.log_det)


def structure_key(design: Design, family: Family, priors: ResolvedPriors, families: str = "present",
                  *extra) -> str:
    """What the graph of :func:`build_pymc_model` (``as_data=True``) holds besides its shared data:
    family and link, the design's arrays, the coordinates and, with ``families="present"``, which
    prior families each prior vector uses. Two models with equal keys build the same graph;
    ``extra`` adds what another builder's graph depends on (see
    :func:`bayesglmm.bayes.compilation.array_digest`)."""
    from .compilation import array_digest

    parts = [family.name, family.link.name, families, design.fixed_names, design.X, design.offset, design.trials]
    for block in design.random:
        parts += [block.label, block.terms, block.levels, block.index, block.Xr, block.has_correlation]
    if families == "present":
        parts += prior_kinds(priors)
    return array_digest(*parts, *extra)


def prior_kinds(priors: ResolvedPriors) -> list:
    """Which prior families each prior vector uses and which blocks have a correlation prior: what a
    graph with ``families="present"`` holds of the priors besides their hyperparameters (data)."""
    kinds = [priors.fixed, *priors.sd, (priors.sigma,) if priors.sigma is not None else (),
             (priors.dispersion,) if getattr(priors, "dispersion", None) is not None else ()]
    return [tuple(sorted({type(p).__name__ for p in kind})) for kind in kinds] + [c is not None for c in priors.corr]


def build_pymc_model(design: Design, family: Family, priors: ResolvedPriors, families: str = "present",
                     as_data: bool = True, likelihood: str = "observed") -> pm.Model:
    """Compile a GLMM to a :class:`pymc.Model`.

    Parameters
    ----------
    design : Design
    family : Family
    priors : ResolvedPriors
    families : {"present", "all"}
        Which prior families the graph holds (see :mod:`bayesglmm.bayes.prior_graph`): those the
        priors use, or all (the same graph under any prior set: prior sweeps).
    as_data : bool
        Hyperparameters and response as shared variables (True), so that models differing only in
        them share compiled code (PyTensor's and nutpie's: :func:`bayesglmm.bayes.nuts.sample_nutpie`);
        False makes them constants (the samplers PyMC dispatches to through JAX).
    likelihood : {"observed", "fused"}
        The response as the observed variable ``y`` (the distribution of its family: what
        posterior predictive draws and pointwise log-likelihoods need), or, for a canonical-link
        binomial or Poisson model (:func:`fused_likelihood`), its log-likelihood as the potential
        ``y_loglik`` of one fused Op (:mod:`bayesglmm.bayes.loglik_op`): the same log density, a
        third of the time per gradient; what NUTS samples. Other families keep ``y``.

    Returns
    -------
    pymc.Model
        Coordinates: ``obs``, ``fixed``, and per random block ``{group}_level`` and
        ``{label}_term``. See the module docstring for variable names.
    """
    if families not in ("present", "all"):
        raise ValueError(f"families must be 'present' or 'all', got {families!r}")
    if likelihood not in ("observed", "fused"):
        raise ValueError(f"likelihood must be 'observed' or 'fused', got {likelihood!r}")
    coords = {"obs": np.arange(design.nobs), "fixed": list(design.fixed_names)}
    for block in design.random:
        coords.update(block_coords(block))
    with pm.Model(coords=coords) as model:
        beta = location_prior("beta", priors.fixed, "fixed", families, as_data, frame=fixed_frame(design),
                              center=priors.center) if design.X.shape[1] else None
        effects = []
        for block, sd_priors, corr in zip(design.random, priors.sd, priors.corr):
            term_dim, level_dim = f"{block.label}_term", f"{block.group}_level"
            sd, chol = block_scale(block, sd_priors, corr, families, as_data)
            z = pm.Normal(f"{block.label}_z", 0.0, 1.0, dims=(level_dim, term_dim))
            if chol is not None:
                z = pt.dot(z, chol.T)
            effects.append(pm.Deterministic(block.label, z * sd[None, :], dims=(level_dim, term_dim)))
        sigma = scale_prior("sigma", priors.sigma, None, families, as_data) if family.has_scale else None
        if family.has_dispersion:
            sigma = dispersion_variable(family, priors, families, as_data)
        eta = linear_predictor(design, beta if beta is not None else pt.zeros(0), effects)
        if likelihood == "fused" and fused_likelihood(family):
            _fused_likelihood(family, design, eta, as_data)
        else:
            y = observed_values(family, design.y)
            y = pytensor.shared(y, name="y.observed") if as_data else y
            _likelihood(family, design, eta, sigma, y)
    return model
