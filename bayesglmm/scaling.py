"""The well-conditioned internal parametrization the engines work in, and the exact map back.

A model's answers must not depend on where or in what units a covariate is measured: a year
(2010–2019) in place of 0–9 only changes what the intercept means. Fitted on raw columns they
did — an optimiser's steps and tolerances and IRLS's ridge were on unscaled β, and a year-valued
slope came out 0.687 instead of 10.467 (sleepstudy). So every engine fits an equivalent model
in which the fixed-effect columns are orthonormal and every other number is of order one, and
its estimates are mapped back exactly:

* **X** → X̃ = X A with orthogonal columns of root-mean-square 1 (:func:`column_frame`: the
  columns centred when X holds a constant column, then ``X_c = Q R`` and ``A = M √n R⁻¹``), so
  Xβ = X̃β̃ with β = Aβ̃. The frame is a change of coordinates of β only: any reparametrization of
  X by an invertible matrix gives the same fit.
* **random-effect columns** → each divided by its root-mean-square (an intercept's column of ones
  is left alone): a diagonal change of units that keeps every covariance structure (a scalar,
  uncorrelated or correlated block) the same model, with b = b̃ / z term by term. In a correlated
  block with an intercept the other columns are centred first (Σ is unstructured there, so that is
  the same model too, b = T b̃ with T upper triangular); an uncorrelated block or a slope without an
  intercept is not centred: that would change the model.
* **a Gaussian identity-link response** → ỹ = (y − c) / s with s its SD and c its mean when X
  spans the constant (else 0), the offset divided by s: β = s Aβ̃ + c e (X e = 1), b = s T b̃,
  σ = s σ̃, and the log-likelihood shifts by −n log s (ML; REML by −(n − p) log s + log|det A|:
  REML's criterion depends on the parametrization of X, as lme4's does).

The priors of the Bayesian side see the user's columns; its sampler moves the coefficients in
the same frame (:func:`column_frame` for :class:`~bayesglmm.bayes.prior_graph.LinearFrame`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["ColumnFrame", "column_frame", "DesignScaling", "scale_design", "effect_transform", "full_rank"]


@dataclass(frozen=True)
class ColumnFrame:
    """X̃ = X A with orthogonal columns of root-mean-square 1 (see the module docstring).

    Attributes
    ----------
    A : ndarray, shape (p, p)
        The centring shear M times √n R⁻¹ (upper triangular when the constant column comes first).
    one : ndarray, shape (p,) or None
        Coefficients e with X e = 1 (the constant column's unit vector) when X holds a constant
        column, else None.
    log_det : float
        log |det A|.
    """

    A: np.ndarray
    one: np.ndarray | None
    log_det: float


def constant_column(X) -> int | None:
    """The index of the first column of X that is one nonzero constant (the intercept), or None."""
    X = np.asarray(X, dtype=float)
    if not len(X):
        return None
    for j in range(X.shape[1]):
        if X[0, j] != 0 and np.all(X[:, j] == X[0, j]):
            return j
    return None


def centred_columns(X) -> tuple[np.ndarray, np.ndarray]:
    """X with every column except the constant one centred at its mean, when X holds a constant
    column (an equivalent model: the intercept absorbs the means), and the shear M with
    X_c = X M; else X itself and the identity."""
    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    M = np.eye(p)
    j0 = constant_column(X)
    if j0 is None:
        return X.copy(), M
    means = X.mean(axis=0)
    means[j0] = 0.0
    M[j0, :] -= means / X[0, j0]
    return X - means[None, :], M


def column_frame(X) -> ColumnFrame:
    """The frame X̃ = X A of the module docstring: A = M √n R⁻¹ with X_c = X M the centred columns
    and X_c = Q R its QR decomposition (R's diagonal made positive).

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Of full column rank (:func:`bayesglmm.design.make_design` checks it).
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    Xc, M = centred_columns(X)
    R = np.linalg.qr(Xc, mode="r")
    R = R * np.where(np.diag(R) < 0, -1.0, 1.0)[:, None]  # rows of R, columns of Q: positive diagonal
    A = M @ (np.sqrt(n) * np.linalg.solve(R, np.eye(p)))
    j0 = constant_column(X)
    one = None
    if j0 is not None:
        one = np.zeros(p)
        one[j0] = 1.0 / X[0, j0]
    # det M = 1 (a shear of the constant column's row), so log|det A| = p log √n − Σ log R_jj
    return ColumnFrame(A=A, one=one, log_det=float(p * np.log(np.sqrt(n)) - np.sum(np.log(np.diag(R)))))


def full_rank(X) -> bool:
    """Whether X has full column rank, to the precision its columns are stored with, judged on its
    centred columns scaled to unit length (so not by where or in what units a column is measured:
    [1, x + 10⁸] and [1, 10⁻⁸ x] are of full rank).

    Column by column (a QR decomposition), the part of column j that the earlier columns do not
    explain, |R_jj|, must exceed the rounding that column j and the earlier columns it is made of
    carry: each entry of a column holds an error up to ε·max|X_j|, relative to the centred column's
    length ε·max|X_j|·√n/‖X_j − x̄_j‖. So 3x + 10⁸ beside x is collinear (it differs from a
    combination only by its rounding, 10⁻⁸ of it), while smoke beside age·smoke with age + 10⁷ is not
    (a single tolerance from the noisiest column, the shifted age's, had called that pair collinear).
    """
    from scipy.linalg import solve_triangular

    X = np.asarray(X, dtype=float)
    n, p = X.shape
    Xc, _ = centred_columns(X)
    norms = np.linalg.norm(Xc, axis=0)
    if np.any(norms == 0) or not np.all(np.isfinite(Xc)):
        return False
    eps = np.finfo(float).eps
    noise = eps * np.max(np.abs(X), axis=0) * np.sqrt(n) / norms
    R = np.linalg.qr(Xc / norms, mode="r")
    for j in range(p):
        coef = solve_triangular(R[:j, :j], R[:j, j]) if j else np.zeros(0)
        tol = 100.0 * (noise[j] + float(np.abs(coef) @ noise[:j])) + 10.0 * p * eps
        if not abs(R[j, j]) > tol:
            return False
    return True


def rms(x) -> float:
    """Root mean square of ``x``, 1 for a zero vector."""
    r = float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0
    return r if r > 0 and np.isfinite(r) else 1.0


@dataclass(frozen=True, eq=False)
class DesignScaling:
    """A :class:`~bayesglmm.design.Design` in the engines' internal parametrization, and the map
    of estimates back to the user's (see the module docstring).

    Attributes
    ----------
    design : Design
        The internal design: X̃, the random-effect columns Xr̃ = Xr T, for a Gaussian
        identity-link model ỹ and the offset / s.
    frame : ColumnFrame
    transforms : tuple of ndarray
        Per random block, T (k × k) with Xr̃ = Xr T, so that b = s T b̃: diag(1/z) (each column
        over its root-mean-square; 1 for an intercept), and for a correlated block with an
        intercept the other columns also centred (T's intercept row holds −m/z).
    y_shift, y_scale : float
        c and s (0 and 1 unless the response is Gaussian with the identity link).
    """

    design: object
    frame: ColumnFrame
    transforms: tuple
    y_shift: float = 0.0
    y_scale: float = 1.0

    @property
    def beta_jacobian(self) -> np.ndarray:
        """∂β/∂β̃ = s A."""
        return self.y_scale * self.frame.A

    def beta(self, beta_internal) -> np.ndarray:
        """β = s A β̃ + c e."""
        out = self.beta_jacobian @ np.asarray(beta_internal, dtype=float)
        if self.y_shift:
            out = out + self.y_shift * self.frame.one
        return out

    def beta_internal(self, beta) -> np.ndarray:
        """β̃ from β (the inverse of :meth:`beta`)."""
        b = np.asarray(beta, dtype=float)
        if self.y_shift:
            b = b - self.y_shift * self.frame.one
        return np.linalg.solve(self.beta_jacobian, b)

    def effect_map(self, block: int) -> np.ndarray:
        """s T of random block ``block``: its effects b = s T b̃, covariance Σ = s² T Σ̃ Tᵀ."""
        return self.y_scale * self.transforms[block]

    def centred(self, block: int) -> bool:
        """Whether block ``block``'s internal basis is centred (T not diagonal)."""
        T = self.transforms[block]
        return bool(np.any(T != np.diag(np.diag(T))))

    def new_data(self, rows):
        """The model matrices of rows to predict (a :class:`~bayesglmm.design.NewData`) in the internal
        parametrization: X̃ = X A, Xr̃ = Xr T per block, the offset / s — so that the user's linear
        predictor is η = c + s η̃ (:mod:`bayesglmm.frequentist.prediction`)."""
        return replace(rows, X=np.asarray(rows.X, dtype=float) @ self.frame.A,
                       offset=np.asarray(rows.offset, dtype=float) / self.y_scale,
                       Xr=tuple(np.asarray(Xr, dtype=float) @ T for Xr, T in zip(rows.Xr, self.transforms)))

    def loglik_shift(self, reml: bool = False) -> float:
        """log L(user) − log L(internal) at corresponding parameters: −n log s for ML (nothing
        for a non-Gaussian response); −(n − p) log s + log|det A| for REML."""
        d = self.design
        if reml:
            return -(d.nobs - d.X.shape[1]) * np.log(self.y_scale) + self.frame.log_det
        return -d.nobs * np.log(self.y_scale) if self.y_scale != 1.0 else 0.0


def effect_transform(block) -> np.ndarray:
    """T of :class:`DesignScaling` for one :class:`~bayesglmm.design.RandomBlock`: each column over
    its root-mean-square (an intercept's column of ones left alone); in a correlated block with an
    intercept the other columns are centred first (over their SD): Σ is unstructured there, so the
    centred basis describes the same model, and a random slope on a year-valued covariate is not a
    slope nearly collinear with the intercept."""
    Xr = np.asarray(block.Xr, dtype=float)
    k = block.n_terms
    ones = [t for t in range(k) if np.all(Xr[:, t] == 1.0)]
    T = np.eye(k)
    centre = block.correlated and k > 1 and bool(ones)
    for t in range(k):
        if ones and t == ones[0]:
            continue
        if centre:
            m = float(np.mean(Xr[:, t]))
            z = rms(Xr[:, t] - m)
            T[t, t] = 1.0 / z
            T[ones[0], t] = -m / z
        else:
            T[t, t] = 1.0 / rms(Xr[:, t])
    return T


def scale_design(design, family) -> DesignScaling:
    """The internal design of ``design`` and the map back (see :class:`DesignScaling`)."""
    frame = column_frame(design.X)
    X = design.X @ frame.A
    blocks, transforms = [], []
    for block in design.random:
        T = effect_transform(block)
        transforms.append(T)
        blocks.append(replace(block, Xr=_readonly(block.Xr @ T)))
    y, offset, c, s = design.y, design.offset, 0.0, 1.0
    if family.has_scale and family.canonical:  # a Gaussian response on the identity link
        r = np.asarray(design.y, dtype=float) - design.offset
        c = float(np.mean(r)) if frame.one is not None else 0.0
        s = rms(r - c)  # the SD when c is the mean; without a constant column the RMS (its SD about a mean
        # of 10⁹ left ỹ near 10⁹ / SD, and the ML fit 1,470 of deviance short of its optimum)
        y, offset = (design.y - c) / s, design.offset / s
    internal = replace(design, X=_readonly(X), y=_readonly(y), offset=_readonly(offset), random=tuple(blocks))
    return DesignScaling(design=internal, frame=frame, transforms=tuple(transforms), y_shift=c, y_scale=s)


def _readonly(a):
    a = np.ascontiguousarray(a, dtype=float)
    a.setflags(write=False)
    return a
