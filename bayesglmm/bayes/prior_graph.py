"""Priors as data: one PyMC graph serves every prior set of a model structure.

Each prior enters the graph as a :class:`pymc.CustomDist` whose family and hyperparameters are
shared variables, not constants: the family is an integer code and the density a ``switch``
over the families the graph holds. By default a graph holds the families its priors use (one
family, no switch: the smallest graph, quickest to compile); with ``families="all"`` it holds
every allowed family. Two models that differ only
in hyperparameters of the same families, or in their response (see
:func:`bayesglmm.bayes.model.build_pymc_model`), build identical graphs, and so do any two
``"all"`` graphs: PyTensor's compiled-function cache then hands the second one the first one's
compiled code. A simulation study by NUTS compiles once; a prior sweep
(:func:`bayesglmm.prior_sensitivity`) builds ``"all"`` graphs and compiles once; nutpie's compiled
model of such a graph takes the next model's data (:func:`bayesglmm.bayes.nuts.sample_nutpie`).
``as_data=False`` makes them constants (the samplers PyMC dispatches to through JAX: numpyro,
blackjax).

Scale priors (on a standard deviation ``s``) are sampled on ``log s``, or, when a ``Uniform(0, U)``
may be among them, on ``y = log s − log(1 − s/U)``, which is ``log s`` for every other family and
maps U to infinity (the bound ``log_c = −log U`` is data too, ``−inf`` when there is none). InverseGamma priors are on the
variance: the density of ``s`` carries the Jacobian ``2 s``.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.logprob.transforms import Transform

from .. import priors as P

__all__ = ["LOCATION_FAMILIES", "SCALE_FAMILIES", "prior_values", "location_prior", "scale_prior", "lkj_eta",
           "LinearFrame", "SoftplusScale"]

#: the code of a location prior in the graph is its position here
LOCATION_FAMILIES = (P.Normal, P.StudentT)
#: the code of a scale prior in the graph is its position here
SCALE_FAMILIES = (P.HalfNormal, P.HalfStudentT, P.HalfCauchy, P.Exponential, P.Uniform, P.InverseGamma)

_LOG_2_OVER_PI = float(np.log(2.0 / np.pi))


def _location_row(p) -> tuple:
    # (code, nu, mu, sigma); nu is unused by Normal; a centred intercept's row is its prior's
    p = p.prior if isinstance(p, P.CenteredIntercept) else p
    if isinstance(p, P.Normal):
        return 0, 1.0, p.mu, p.sigma
    return 1, p.nu, p.mu, p.sigma


def _scale_row(p) -> tuple:
    # (code, a, b, log_c, start): a a scale, b a shape; start as PyMC's own support point
    if isinstance(p, P.HalfNormal):
        return 0, p.sigma, 1.0, -np.inf, p.sigma
    if isinstance(p, P.HalfStudentT):
        return 1, p.sigma, p.nu, -np.inf, p.sigma
    if isinstance(p, P.HalfCauchy):
        return 2, p.beta, 1.0, -np.inf, p.beta
    if isinstance(p, P.Exponential):
        return 3, 1.0 / p.lam, 1.0, -np.inf, 1.0 / p.lam
    if isinstance(p, P.Uniform):
        return 4, p.upper, 1.0, -np.log(p.upper), p.upper / 2.0
    if isinstance(p, P.InverseGamma):
        var = p.beta / (p.alpha - 1.0) if p.alpha > 1 else p.beta / (p.alpha + 1.0)
        return 5, p.beta, p.alpha, -np.inf, np.sqrt(var)
    raise TypeError(f"no graph translation for prior {type(p).__name__}")  # pragma: no cover


def prior_values(prior_list, kind: str) -> dict:
    """The data arrays of a vector of priors (or 0-d arrays of a single prior): ``kind`` is
    ``"location"`` or ``"scale"``.

    Returns
    -------
    dict
        ``code`` (int64) and float arrays: ``nu``, ``mu``, ``sigma`` (location) or ``a``, ``b``,
        ``log_c``, ``start`` (scale), each with one element per prior.
    """
    if isinstance(prior_list, P.Prior):
        return {k: v[0] for k, v in prior_values([prior_list], kind).items()}
    if kind == "location":
        rows, names = [_location_row(p) for p in prior_list], ("code", "nu", "mu", "sigma")
    else:
        rows, names = [_scale_row(p) for p in prior_list], ("code", "a", "b", "log_c", "start")
    cols = list(zip(*rows))
    out = {names[0]: np.asarray(cols[0], dtype=np.int64)}
    out.update({n: np.asarray(c, dtype=float) for n, c in zip(names[1:], cols[1:])})
    return out


def _shared(values: dict, name: str, as_data: bool = True) -> dict:
    # shared variables, not constants: their values stay out of the compiled graph (as_data=False:
    # constants, for the samplers PyMC dispatches to through JAX)
    if not as_data:
        return {k: pt.constant(v, name=f"{name}.prior.{k}") for k, v in values.items()}
    return {k: pytensor.shared(v, name=f"{name}.prior.{k}") for k, v in values.items()}


# --- location: Normal / StudentT -----------------------------------------------------------
def _student_logp(z, nu):
    return (pt.gammaln((nu + 1.0) / 2.0) - pt.gammaln(nu / 2.0) - 0.5 * pt.log(nu * np.pi)
            - (nu + 1.0) / 2.0 * pt.log1p(z * z / nu))


def _location_logp_for(codes, centered=False):
    """The log density of the location families ``codes`` (a switch only when there are two);
    ``centered``: the density of the value sheared by the centring vector (the last input),
    ``v = value + e₀ (c · value)`` with ``c₀ = 0`` (a unit Jacobian)."""

    def logp(value, code, nu, mu, sigma, *center):
        if centered:
            value = _shear(value, center[0], 1.0)
        z = (value - mu) / sigma
        normal = -0.5 * z * z - 0.5 * np.log(2.0 * np.pi)
        if codes == {0}:
            return normal - pt.log(sigma)
        if codes == {1}:
            return _student_logp(z, nu) - pt.log(sigma)
        return pt.switch(pt.eq(code, 0), normal, _student_logp(z, nu)) - pt.log(sigma)

    return logp


def _shear(value, center, sign):
    """``value + sign · e₀ (center · value)`` along the last axis, where ``center``'s first
    entry (the intercept's) is 0 and the other entries the columns' means: the centred
    intercept from β (sign = 1) and back (sign = -1)."""
    lib = np if isinstance(value, np.ndarray) else pt
    shift = sign * (value * center).sum(axis=-1, keepdims=True)
    first = (lib.arange(value.shape[-1]) == 0).astype(value.dtype) if lib is np else pt.eq(pt.arange(value.shape[-1]), 0)
    return value + shift * first


def _location_random(code, nu, mu, sigma, *center, rng=None, size=None):
    t = rng.standard_t(np.broadcast_to(nu, size) if size is not None else nu, size=size)
    n = rng.standard_normal(size=size if size is not None else np.shape(mu))
    out = mu + sigma * np.where(code == 0, n, t)
    return _shear(np.asarray(out, dtype=float), np.asarray(center[0]), -1.0) if center else out


def _location_start(rv, size, code, nu, mu, sigma, *center):
    start = pt.full_like(rv, 0.0) + mu
    return _shear(start, center[0], -1.0) if center else start


def _codes(values, families, n):
    return set(range(n)) if families == "all" else set(np.unique(values["code"]).tolist())


class LinearFrame(Transform):
    """``β = shift + C w`` with C invertible: the sampler moves ``w``, the model's density is
    β's own (the Jacobian log |det C| is a constant). With ``shift`` and ``C C ᵀ`` a fit's estimate and
    covariance of β (C lower triangular), ``w`` is about standard normal and uncorrelated where β's
    coordinates are strongly correlated (an intercept with the columns of a factor, x with x²), which
    a diagonal mass matrix cannot undo; with C the frame A of :func:`bayesglmm.scaling.column_frame`,
    ``w`` are the coefficients of X's orthonormal columns, whatever the units and origins of X's. A
    multivariate transform of a vector of independent priors: PyMC sums their log densities before
    adding the Jacobian.

    :meth:`as_data` gives the same frame with its arrays as data: they enter the graph as the last
    inputs of the prior (:attr:`data_inputs`, which :func:`location_prior` appends), since PyMC
    passes a transform only its variable's inputs; as columns, each of β's length, so that the
    prior stays elementwise."""

    name = "linearframe"  # no underscore: PyMC strips "_{name}__" to find the variable
    ndim_supp = 1
    #: the columns of [shift, C, C⁻¹, log |det C|] (a shared matrix, p × (2p + 2)) the prior takes as
    #: its last inputs; () when the arrays are constants of the graph
    data_inputs: tuple = ()

    def __init__(self, shift, chol, log_det: float | None = None):
        self.shift = np.asarray(shift, dtype=float)
        self.chol = np.asarray(chol, dtype=float)
        self.inverse = np.linalg.inv(self.chol)
        self.log_det = float(np.linalg.slogdet(self.chol)[1]) if log_det is None else float(log_det)

    def as_data(self, name: str) -> "LinearFrame":
        """This frame with its arrays as shared variables named ``{name}.frame.*`` (see the class
        docstring): models of one structure with other frames (another data set's fit) share
        compiled code."""
        out = LinearFrame(self.shift, self.chol, self.log_det)
        p = len(self.shift)
        matrix = np.column_stack([self.shift, self.chol, self.inverse, np.full(p, self.log_det)])
        out.data_inputs = tuple(pytensor.shared(np.ascontiguousarray(matrix[:, j]), name=f"{name}.frame.{j}")
                                for j in range(2 * p + 2))
        return out

    def _arrays(self, inputs):
        if not self.data_inputs:
            return self.shift, self.chol, self.inverse, self.log_det
        p = len(self.shift)
        cols = inputs[len(inputs) - (2 * p + 2):]
        return cols[0], pt.stack(cols[1:p + 1], axis=1), pt.stack(cols[p + 1:2 * p + 1], axis=1), cols[-1][0]

    def forward(self, value, *inputs):
        shift, _, inverse, _ = self._arrays(inputs)
        return pt.dot(value - shift, inverse.T)

    def backward(self, value, *inputs):
        shift, chol, _, _ = self._arrays(inputs)
        return shift + pt.dot(value, chol.T)

    def log_jac_det(self, value, *inputs):
        return pt.zeros(value.shape[:-1]) + self._arrays(inputs)[3]


def _ignoring_last(k: int, logp, random, support_point) -> tuple:
    """A :class:`pymc.CustomDist`'s functions for a distribution given ``k`` more inputs at the end
    (a transform's data), which they ignore."""
    if not k:
        return logp, random, support_point
    return (lambda value, *params: logp(value, *params[:-k]),
            lambda *params, rng=None, size=None: random(*params[:-k], rng=rng, size=size),
            lambda rv, size, *params: support_point(rv, size, *params[:-k]))


def location_prior(name: str, prior_list, dims, families="present", as_data: bool = True,
                   frame: LinearFrame | None = None, center=None):
    """A vector of Normal/StudentT priors (or one prior) as one random variable.

    ``families="present"`` puts only the families in ``prior_list`` into the graph; ``"all"`` puts
    every family there, so that any other location prior gives the same graph (prior sweeps).
    ``frame``: the variable is sampled in that linear frame (:class:`LinearFrame`), else as it is.
    ``center`` (:attr:`~bayesglmm.priors.ResolvedPriors.center`): the first prior is on the first
    coordinate plus ``center · value`` (a :class:`~bayesglmm.priors.CenteredIntercept`); with
    ``families="all"`` the centring is in the graph always, as data (zeros when None)."""
    values = prior_values(prior_list, "location")
    centered = center is not None or (families == "all" and not isinstance(prior_list, P.Prior))
    if centered:
        values["center"] = np.asarray(center if center is not None else np.zeros(len(prior_list)), dtype=float)
    data = _shared(values, name, as_data)
    inputs = [data["code"], data["nu"], data["mu"], data["sigma"]] + ([data["center"]] if centered else [])
    # no frame: no transform argument at all (PyMC warns that transform=None "will not have any effect")
    extra = {} if frame is None else {"transform": frame}
    tail = list(frame.data_inputs) if frame is not None else []
    logp, random, start = _ignoring_last(len(tail), _location_logp_for(_codes(values, families, len(LOCATION_FAMILIES)),
                                                                       centered), _location_random, _location_start)
    return pm.CustomDist(name, *inputs, *tail, logp=logp, random=random, support_point=start, dims=dims, **extra)


# --- scale: HalfNormal / HalfStudentT / HalfCauchy / Exponential / Uniform(0, U) / InverseGamma
def _scale_logp_for(codes):
    """The log density of the scale families ``codes``, a ``switch`` over them when there are several."""

    def logp(value, code, a, b, log_c, start):
        x = value / a
        branch = {  # log density of s; the first five with a scale a
            0: lambda: 0.5 * _LOG_2_OVER_PI - 0.5 * x * x - pt.log(a),               # HalfNormal
            1: lambda: np.log(2.0) + _student_logp(x, b) - pt.log(a),                # HalfStudentT
            2: lambda: _LOG_2_OVER_PI - pt.log1p(x * x) - pt.log(a),                 # HalfCauchy
            3: lambda: -x - pt.log(a),                                               # Exponential
            4: lambda: pt.switch(pt.le(x, 1.0), 0.0, -np.inf) - pt.log(a),           # Uniform(0, a)
            # InverseGamma(b, a) on v = s²: b log a − lgamma(b) − (b+1) log v − a/v, times |dv/ds| = 2s
            5: lambda: (b * pt.log(a) - pt.gammaln(b) - (b + 1.0) * pt.log(value * value) - a / (value * value)
                        + pt.log(2.0 * value)),
        }
        present = sorted(codes)
        out = branch[present[-1]]()
        for c in reversed(present[:-1]):
            out = pt.switch(pt.eq(code, c), branch[c](), out)
        return pt.switch(pt.gt(value, 0.0), out, -np.inf)

    return logp


def _scale_random(code, a, b, log_c, start, rng=None, size=None):
    shape = size if size is not None else np.shape(a)
    a, b, code = np.broadcast_to(a, shape), np.broadcast_to(b, shape), np.broadcast_to(code, shape)
    draws = np.select(
        [code == 0, code == 1, code == 2, code == 3, code == 4],
        [np.abs(rng.standard_normal(shape)) * a, np.abs(rng.standard_t(b, shape)) * a,
         np.abs(rng.standard_cauchy(shape)) * a, rng.exponential(1.0, shape) * a, rng.uniform(0.0, 1.0, shape) * a],
        np.sqrt(a / rng.gamma(b, 1.0, shape)),
    )
    return draws


def _scale_start(rv, size, code, a, b, log_c, start):
    return pt.full_like(rv, 0.0) + start


class BoundedLog(Transform):
    """``y = log s − log(1 − s·c)`` with ``log c`` the last input: ``log s`` when ``c = 0``, and
    (0, 1/c) onto the real line otherwise (a Uniform(0, U) prior, ``c = 1/U``)."""

    name = "boundedlog"  # no underscore: PyMC strips "_{name}__" to find the variable
    ndim_supp = 0

    def forward(self, value, *inputs):
        log_c = inputs[-2]
        log_s = pt.log(value)
        return log_s - pt.log1p(-pt.exp(log_s + log_c))

    def backward(self, value, *inputs):
        return pt.exp(value - pt.softplus(value + inputs[-2]))

    def log_jac_det(self, value, *inputs):
        return value - 2.0 * pt.softplus(value + inputs[-2])


class SoftplusScale(Transform):
    """``s = c · softplus(y)`` for a positive s: logarithmic where s ≪ c (y ≈ log(s/c)), linear where
    s ≫ c (y ≈ s/c). An SD's posterior is skewed on the log scale when its mass reaches towards 0
    — the prior's density near 0 times an almost flat likelihood makes an exponential left tail
    (Contraception's urban slope SD: skewness −1.3, excess kurtosis 5 in log s) — and close to
    normal in s itself away from 0 (−0.04 and 0.7 in this y with c = 0.25); ``c`` (an array, one
    per element) sets where the two meet. ``knee=None``: c is the prior's last input (data, see
    :func:`scale_prior`)."""

    name = "softplus"  # no underscore: PyMC strips "_{name}__" to find the variable
    ndim_supp = 0

    def __init__(self, knee):
        self.knee = None if knee is None else np.asarray(knee, dtype=float)

    def _knee(self, inputs):
        return inputs[-1] if self.knee is None else self.knee

    def forward(self, value, *inputs):
        return pt.log(pt.expm1(value / self._knee(inputs)))

    def backward(self, value, *inputs):
        return self._knee(inputs) * pt.softplus(value)

    def log_jac_det(self, value, *inputs):
        return pt.log(self._knee(inputs)) - pt.softplus(-value)


def scale_prior(name: str, prior_list, dims, families="present", as_data: bool = True, knee=None):
    """A vector of SD priors (any of :data:`SCALE_FAMILIES`), or one, as one positive random variable.

    ``families="present"`` puts only the families in ``prior_list`` into the graph (sampled on
    log s, or by :class:`BoundedLog` when a Uniform is among them); ``"all"`` puts every family and
    the bounded transform there, so that any other SD prior gives the same graph (prior sweeps).
    ``knee`` (no Uniform among the priors): sampled by :class:`SoftplusScale` with that knee instead
    of on log s (the knee is data too with ``as_data``)."""
    values = prior_values(prior_list, "scale")
    codes = _codes(values, families, len(SCALE_FAMILIES))
    data = _shared(values, name, as_data)
    transform, tail = BoundedLog() if 4 in codes else pm.distributions.transforms.log, []
    if knee is not None and 4 not in codes:
        knee = np.array(np.broadcast_to(np.asarray(knee, dtype=float), np.shape(values["a"])))
        if as_data:  # the knee as the prior's last input (BoundedLog's log_c stays inputs[-2] without a knee)
            transform, tail = SoftplusScale(None), [pytensor.shared(knee, name=f"{name}.knee")]
        else:
            transform = SoftplusScale(knee)
    logp, random, start = _ignoring_last(len(tail), _scale_logp_for(codes), _scale_random, _scale_start)
    return pm.CustomDist(name, data["code"], data["a"], data["b"], data["log_c"], data["start"], *tail,
                         logp=logp, random=random, support_point=start, transform=transform, dims=dims)


def lkj_eta(name: str, prior, as_data: bool = True):
    """The LKJ shape of a correlated block as shared data (a constant with ``as_data=False``)."""
    return _shared({"eta": np.asarray(float(prior.eta))}, name, as_data)["eta"]
