"""Design + family + priors → a PyMC model.

Random effects are non-centred, ``b = (z * sd) @ L_corrᵀ`` with ``z ~ N(0, 1)``, and
enter the linear predictor by integer group indexing (``b[index] * Xr``) rather
than a dense Z product. Variable names:

=================================  ==============================================
``beta``                           fixed effects, dims ``("fixed",)``
``{label}_sd``                     SDs of a random block, e.g. ``"1|herd_sd"``
``{label}_sd_var``                 the variance, when its prior is InverseGamma
``{label}_corr_chol``              LKJ Cholesky factor of a correlated block
``{label}_corr``                   its correlation matrix (deterministic)
``{label}_z``                      standardised effects, dims ``(level, term)``
``{label}``                        the random effects b (deterministic), e.g. ``"1|herd"``
``sigma``                          Gaussian residual SD
``y``                              the observed response, dims ``("obs",)``
=================================  ==============================================
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .. import priors as P
from ..design import Design
from ..families import Family
from ..priors import ResolvedPriors

__all__ = ["build_pymc_model", "inverse_link", "linear_predictor"]


# The one table that translates the numpy family layer to PyTensor.
_INVERSE_LINK = {
    "logit": pt.sigmoid,
    "probit": lambda eta: 0.5 * pt.erfc(-eta / np.sqrt(2.0)),
    "cloglog": lambda eta: -pt.expm1(-pt.exp(eta)),
    "log": pt.exp,
    "identity": lambda eta: eta,
}


def inverse_link(family: Family, eta):
    """μ = g⁻¹(η) as a PyTensor expression."""
    return _INVERSE_LINK[family.link.name](eta)


def _likelihood(family: Family, design: Design, eta, sigma):
    y = design.y
    if family.name in ("bernoulli", "binomial"):
        kw = {"logit_p": eta} if family.link.name == "logit" else {"p": inverse_link(family, eta)}
        if family.name == "bernoulli":
            return pm.Bernoulli("y", observed=y.astype(np.int64), dims="obs", **kw)
        return pm.Binomial("y", n=design.trials.astype(np.int64), observed=y.astype(np.int64),
                           dims="obs", **kw)
    if family.name == "poisson":
        return pm.Poisson("y", mu=inverse_link(family, eta), observed=y.astype(np.int64), dims="obs")
    return pm.Normal("y", mu=inverse_link(family, eta), sigma=sigma, observed=y, dims="obs")


def _stack_params(prior_list):
    return {k: np.array([getattr(p, k) for p in prior_list], dtype=float) for k in prior_list[0].params}


def _rv(name, prior_cls, params, dims):
    """A PyMC random variable from a prior description (params may be arrays)."""
    if prior_cls is P.Normal:
        return pm.Normal(name, mu=params["mu"], sigma=params["sigma"], dims=dims)
    if prior_cls is P.StudentT:
        return pm.StudentT(name, nu=params["nu"], mu=params["mu"], sigma=params["sigma"], dims=dims)
    if prior_cls is P.HalfNormal:
        return pm.HalfNormal(name, sigma=params["sigma"], dims=dims)
    if prior_cls is P.HalfStudentT:
        return pm.HalfStudentT(name, nu=params["nu"], sigma=params["sigma"], dims=dims)
    if prior_cls is P.HalfCauchy:
        return pm.HalfCauchy(name, beta=params["beta"], dims=dims)
    if prior_cls is P.Exponential:
        return pm.Exponential(name, lam=params["lam"], dims=dims)
    if prior_cls is P.Uniform:
        return pm.Uniform(name, lower=params["lower"], upper=params["upper"], dims=dims)
    if prior_cls is P.InverseGamma:
        return pm.InverseGamma(name, alpha=params["alpha"], beta=params["beta"], dims=dims)
    raise TypeError(f"no PyMC translation for prior {prior_cls.__name__}")  # pragma: no cover


def _vector(name, prior_list, dim, labels):
    """One vector variable ``name`` with ``dims=(dim,)`` from per-element priors.

    Elements that share a prior family become one vectorised random variable;
    a prior on the variance (InverseGamma) is sampled as ``{name}_var`` and
    square-rooted. When families differ, the pieces are stacked in a Deterministic.
    """
    kinds = {type(p) for p in prior_list}
    on_variance = [p.role == "variance" for p in prior_list]
    if len(kinds) == 1:
        cls = kinds.pop()
        params = _stack_params(prior_list)
        if on_variance[0]:
            var = _rv(f"{name}_var", cls, params, (dim,))
            return pm.Deterministic(name, pt.sqrt(var), dims=dim)
        return _rv(name, cls, params, (dim,))
    pieces = []
    for label, p in zip(labels, prior_list):
        params = {k: np.asarray(v, dtype=float) for k, v in p.params.items()}
        piece = _rv(f"{name}[{label}]" + ("_var" if p.role == "variance" else ""), type(p), params, None)
        pieces.append(pt.sqrt(piece) if p.role == "variance" else piece)
    return pm.Deterministic(name, pt.stack(pieces), dims=dim)


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
        rows = b[block.index]
        if block.n_terms == 1 and np.all(block.Xr == 1.0):
            eta = eta + rows[:, 0]
        else:
            eta = eta + pt.sum(rows * pt.as_tensor_variable(block.Xr), axis=1)
    return eta


def build_pymc_model(design: Design, family: Family, priors: ResolvedPriors) -> pm.Model:
    """Compile a GLMM to a :class:`pymc.Model`.

    Parameters
    ----------
    design : Design
    family : Family
    priors : ResolvedPriors

    Returns
    -------
    pymc.Model
        Coordinates: ``obs``, ``fixed``, and per random block ``{group}_level`` and
        ``{label}_term``. See the module docstring for variable names.
    """
    coords = {"obs": np.arange(design.nobs), "fixed": list(design.fixed_names)}
    for block in design.random:
        coords[f"{block.group}_level"] = list(block.levels)
        coords[f"{block.label}_term"] = list(block.terms)
        if block.has_correlation:
            coords[f"{block.label}_term_bis"] = list(block.terms)
    with pm.Model(coords=coords) as model:
        beta = _vector("beta", list(priors.fixed), "fixed", design.fixed_names) if design.X.shape[1] else None
        effects = []
        for block, sd_priors, corr in zip(design.random, priors.sd, priors.corr):
            term_dim, level_dim = f"{block.label}_term", f"{block.group}_level"
            sd = _vector(f"{block.label}_sd", list(sd_priors), term_dim, block.terms)
            z = pm.Normal(f"{block.label}_z", 0.0, 1.0, dims=(level_dim, term_dim))
            if corr is not None:
                # rows b_j = diag(sd) L z_j with L L' the correlation matrix: Cov(b_j) = D R D
                chol = pm.LKJCorr(f"{block.label}_corr_chol", n=block.n_terms, eta=corr.eta)
                pm.Deterministic(f"{block.label}_corr", pt.dot(chol, chol.T),
                                 dims=(term_dim, f"{block.label}_term_bis"))
                z = pt.dot(z, chol.T)
            effects.append(pm.Deterministic(block.label, z * sd[None, :], dims=(level_dim, term_dim)))
        sigma = None
        if family.has_scale:
            sig_p = priors.sigma
            params = {k: np.asarray(v, dtype=float) for k, v in sig_p.params.items()}
            if sig_p.role == "variance":
                sigma = pm.Deterministic("sigma", pt.sqrt(_rv("sigma_var", type(sig_p), params, None)))
            else:
                sigma = _rv("sigma", type(sig_p), params, None)
        eta = linear_predictor(design, beta if beta is not None else pt.zeros(0), effects)
        _likelihood(family, design, eta, sigma)
    return model
