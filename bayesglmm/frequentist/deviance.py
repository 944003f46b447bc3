"""The objective each likelihood method minimises, as a public object (lme4's ``devfun``).

``model.deviance("laplace")`` returns a :class:`Deviance`: −2 log L as a function of one
parameter vector, the same function the engine hands its optimiser. A teacher can evaluate it,
trace it along one coordinate (:meth:`Deviance.slice`) and see why a variance component sits on
its boundary or how much flatter AGQ's surface is than Laplace's. The vector is

- ``laplace``/``agq``: (θ, β), θ the lower triangles of the relative Cholesky factors (absolute
  scale: σ = 1), as ``glmer(..., devFunOnly = TRUE)`` after its first stage; a dispersion
  family's log θ (or log shape) last, ``log(theta)``;
- ``ml``/``reml``: θ only, relative to the residual SD, with β and σ profiled out, as
  ``lmer(..., devFunOnly = TRUE)``.

Values include every normalising constant, so ``deviance(deviance.params(fit)) == -2 * fit.loglik``.
PQL has no such function: it alternates a linearisation with working-LMM fits and maximises no
single objective.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["Deviance", "model_deviance"]


class Deviance:
    """−2 log L of a model as a function of the parameter vector ``names`` describes.

    Attributes
    ----------
    method : str
        ``"laplace"``, ``"agq"``, ``"ml"`` or ``"reml"``.
    nagq : int
        Nodes per dimension (1 for Laplace and the LMMs).
    names : list of str
        One per coordinate: ``theta[group.term]`` (a diagonal entry of a relative factor),
        ``theta[group.term.term2]`` (below the diagonal), then the fixed-effect names (GLMMs).
    start : ndarray
        The engines' starting value: identity factors and β of the GLM without random effects,
        in the internal parametrization (:mod:`bayesglmm.scaling`), on the user's scale.
    lower : ndarray
        Lower bounds (0 for diagonal θ entries, −inf elsewhere).
    """

    def __init__(self, model, method, nagq, names, start, lower, fun, value_and_grad):
        self.model, self.method, self.nagq = model, method, nagq
        self.names, self.start, self.lower = list(names), np.asarray(start, float), np.asarray(lower, float)
        self._fun, self._value_and_grad = fun, value_and_grad

    def __call__(self, params) -> float:
        """The deviance at ``params`` (a vector in the order of :attr:`names`)."""
        return float(self._fun(self._check(params)))

    def value_and_grad(self, params) -> tuple[float, np.ndarray]:
        """The deviance and its gradient (analytic where the engine has one, else central
        differences), as the optimiser sees them."""
        return self._value_and_grad(self._check(params))

    def loglik(self, params) -> float:
        """log L = −deviance / 2."""
        return -0.5 * self(params)

    def params(self, fit) -> np.ndarray:
        """The estimates of ``fit`` (an :class:`~bayesglmm.frequentist.fit.MLFit` of the same
        model and method) as a vector of this function."""
        if fit.method != self.method:
            raise ValueError(f"this is the {self.method!r} deviance; the fit is by {fit.method!r}")
        theta = np.asarray(fit.theta, dtype=float)
        if self.method in ("ml", "reml"):
            return theta / float(fit.dispersion)
        extra = [np.log(fit.dispersion)] if fit.model.family.has_dispersion else []
        return np.concatenate([theta, np.asarray(fit.beta, dtype=float), extra])

    def slice(self, name: str, values, at=None) -> pd.DataFrame:
        """The deviance along coordinate ``name`` with the others held at ``at`` (a vector, or a
        fit; default :attr:`start`) — a cross-section to plot, not a profile (nothing is
        re-optimised; :meth:`MLFit.profile` gives profile intervals).

        Returns
        -------
        pandas.DataFrame
            Columns ``value`` and ``deviance``.
        """
        if name not in self.names:
            raise ValueError(f"unknown coordinate {name!r}; this deviance has {', '.join(self.names)}")
        base = self.start if at is None else (self.params(at) if hasattr(at, "method") else self._check(at))
        i = self.names.index(name)
        values = np.asarray(values, dtype=float)
        if np.any(values < self.lower[i]):
            raise ValueError(f"{name} must be ≥ {self.lower[i]:g}")
        out = []
        for v in values:
            x = base.copy()
            x[i] = v
            out.append(self(x))
        return pd.DataFrame({"value": values, "deviance": out})

    def _check(self, params) -> np.ndarray:
        x = np.asarray(params, dtype=float).ravel()
        if x.shape != (len(self.names),):
            raise ValueError(f"params must have {len(self.names)} entries ({', '.join(self.names)}), got {x.size}")
        return x

    def __repr__(self):
        nodes = f", nagq={self.nagq}" if self.method == "agq" else ""
        return f"<Deviance {self.method}{nodes}: {self.model.formula!r} in ({', '.join(self.names)})>"


def theta_names(design) -> list[str]:
    """lme4-style names of θ's entries, in :class:`~bayesglmm.frequentist.laplace.ThetaMap` order."""
    out = []
    from .theta import factor_entries

    for block in design.random:
        rows, cols = factor_entries(block)
        for r, c in zip(rows, cols):
            out.append(f"theta[{block.group}.{block.terms[r]}]" if r == c
                       else f"theta[{block.group}.{block.terms[r]}.{block.terms[c]}]")
    return out


def model_deviance(model, method: str = "laplace", nagq: int | None = None) -> Deviance:
    """The :class:`Deviance` of ``model`` under ``method``; see :meth:`bayesglmm.GLMM.deviance`."""
    from ..scaling import scale_design
    from .fit import check_options, default_nagq
    from .laplace import laplace_deviance
    from .optimize import central_value_and_grad
    from .pirls import glm_start
    from .theta import ThetaMap
    from .rescale import centred_blocks, internal_theta_map, user_theta

    design = model.design
    if method == "pql":
        raise ValueError("PQL maximises no single objective (it alternates a linearisation with working-LMM "
                         "fits): use method='laplace', 'agq', 'ml' or 'reml'")
    if method not in ("laplace", "agq", "ml", "reml"):
        raise ValueError(f"method must be 'laplace', 'agq', 'ml' or 'reml', got {method!r}")
    if not design.random:
        raise ValueError("the model has no random effects: its deviance is a GLM's")
    if method != "agq" and nagq is not None:
        raise ValueError(f"nagq applies to method='agq', not {method!r}")
    check_options(method, nagq, {})
    names = theta_names(design)
    scaling = scale_design(design, model.family)
    internal = scaling.design  # the engines' parametrization (bayesglmm.scaling), wrapped in the user's
    full = centred_blocks(scaling)
    user_tmap = ThetaMap(design)
    if method in ("ml", "reml"):
        from .lmm import lmm_deviance

        reml = method == "reml"
        fun, vg, tmap = lmm_deviance(internal, model.family, reml=reml, full=full)
        P = internal_theta_map(user_tmap, tmap, scaling, relative=True)  # θ relative to σ: s cancels
        fun, vg = _in_user_coordinates(fun, vg, P, None, -2.0 * scaling.loglik_shift(reml))
        start = user_theta(ThetaMap(internal).theta0(), user_tmap, scaling) / scaling.y_scale
        return Deviance(model, method, 1, names, start, user_tmap.lower, fun, vg)
    nagq = 1 if method == "laplace" else (default_nagq(design) if nagq is None else nagq)
    family = model.family
    devfun, tmap = laplace_deviance(internal, family, nagq, full=full)
    extra = []  # a dispersion family's log φ, last: its start by moments at the GLM's means
    if family.has_dispersion:
        beta0 = glm_start(internal, family.with_dispersion(1.0))
        mu = family.link.inverse(internal.offset + internal.X @ beta0)
        extra = [float(np.log(family.dispersion_start(internal.y, mu, internal.trials)))]
        beta0 = glm_start(internal, family.with_dispersion(np.exp(extra[0])))
        names = names + list(design.fixed_names) + [f"log({family.dispersion_name})"]
    else:
        beta0 = glm_start(internal, family)
        names = names + list(design.fixed_names)
    lower = np.array(list(user_tmap.lower) + [-np.inf] * (design.X.shape[1] + len(extra)))
    vg = devfun.value_and_grad
    P = internal_theta_map(user_tmap, tmap, scaling)
    if vg is None or vg(np.concatenate([P @ user_tmap.theta0(), beta0, extra])) is None:
        vg = central_value_and_grad(devfun, np.array(list(tmap.lower) + [-np.inf] * (len(beta0) + len(extra))))
    fun, vg = _in_user_coordinates(devfun, vg, P, scaling, 0.0, n_beta=len(beta0))
    start = np.concatenate([user_theta(ThetaMap(internal).theta0(), user_tmap, scaling), scaling.beta(beta0), extra])
    return Deviance(model, method, nagq, names, start, lower, fun, vg)


def _in_user_coordinates(fun, value_and_grad, P, scaling, const, n_beta: int = 0):
    """``fun`` and ``value_and_grad`` of the internal parametrization as functions of the user's
    x = (θ, β[, log φ]): θ̃ = P θ (:func:`~bayesglmm.frequentist.rescale.internal_theta_map`), β̃
    (``n_beta`` entries) from β by ``scaling`` (none for the LMMs' θ-only vector), a dispersion's
    log φ after them unchanged, the value plus ``const``; the gradient by the chain rule (the map
    is affine)."""
    nt = P.shape[1]
    jb_inv_t = None if scaling is None else np.linalg.inv(scaling.beta_jacobian).T

    def internal(x):
        x = np.asarray(x, dtype=float)
        if scaling is None:
            return P @ x
        return np.concatenate([P @ x[:nt], scaling.beta_internal(x[nt:nt + n_beta]), x[nt + n_beta:]])

    def user_fun(x):
        return fun(internal(x)) + const

    def user_value_and_grad(x):
        f, g = value_and_grad(internal(x))
        g = np.asarray(g, dtype=float)
        nti = P.shape[0]
        gu = P.T @ g[:nti]
        if scaling is not None:
            gu = np.concatenate([gu, jb_inv_t @ g[nti:nti + n_beta], g[nti + n_beta:]])
        return f + const, gu

    return user_fun, user_value_and_grad
