"""Interoperability with bambi: :func:`from_bambi` turns a bambi model into a :class:`GLMM`.

A bambi user keeps their model and gets bayesglmm's comparison of methods on it::

    bmodel = bambi.Model("p(incidence, size) ~ period + (1 | herd)", data, family="binomial")
    cmp = bayesglmm.compare(bayesglmm.from_bambi(bmodel))

What carries over: the main formula, the data (bambi's copy, with its categorical
columns), the family and the link. bambi 0.21's group-specific terms are uncorrelated,
so ``(1 + x | g)`` becomes bayesglmm's ``(1 + x || g)`` — the same model; pass
``correlated=True`` to get lme4's correlated version instead. bambi's priors carry over
(``bambi_priors=True``): Normal/StudentT on the coefficients, HalfNormal/HalfStudentT/
HalfCauchy/Exponential on the group SDs and the Gaussian ``sigma``, and the intercept's prior
at the columns' means (:class:`~bayesglmm.priors.CenteredIntercept`) when bambi centres the
predictors (``center_predictors=True``, its default), so the two posteriors are of the same
model; a prior of another kind is left to bayesglmm's default with a
warning. Distributional sub-models (``sigma ~ x``) and families other than Gaussian,
Bernoulli, binomial and Poisson are refused.
"""

from __future__ import annotations

import warnings

import numpy as np

from .families import FAMILIES, get_family

__all__ = ["from_bambi"]


def _uncorrelated(formula: str) -> str:
    """Every ``(expr | g)`` bar of a formula whose ``expr`` has two or more terms as ``(expr || g)`` (bambi's
    terms are independent); a one-term block, ``(1 | g)`` or ``(0 + x | g)``, keeps its ``|``: it has no
    correlation to drop, and printing it as ``(1 || g)`` only puzzled."""
    out, depth, opened = [], 0, []
    for i, ch in enumerate(formula):
        if ch == "(":
            depth += 1
            opened.append(len(out))
        elif ch == ")":
            depth -= 1
            if opened:
                opened.pop()
        if ch == "|" and depth > 0 and formula[i - 1:i] != "|" and formula[i + 1:i + 2] != "|":
            start = opened[-1] + 1 if opened else 0
            out.append("||" if _n_terms("".join(out[start:])) > 1 else "|")
        else:
            out.append(ch)
    return "".join(out)


def _n_terms(expr: str) -> int:
    """The random-effect columns of a bar's left side, roughly: its '+'-separated terms, the intercept
    counted unless removed by '0' or '-1' (a factor with several levels counts once: enough to tell one
    term from several)."""
    parts = [t.strip() for t in expr.replace("-", "+-").split("+") if t.strip()]
    no_intercept = any(t in ("0", "-1") for t in parts)
    terms = [t for t in parts if t not in ("0", "1", "-1")]
    return len(terms) + (0 if no_intercept else 1)


def _translate(prior, kinds):
    """A bambi Prior → the bayesglmm prior of the same kind (or None)."""
    from . import priors as P

    args = {k: np.asarray(v, dtype=float) for k, v in prior.args.items() if not hasattr(v, "args")}
    table = {"Normal": (P.Normal, ("mu", "sigma")), "StudentT": (P.StudentT, ("nu", "mu", "sigma")),
             "HalfNormal": (P.HalfNormal, ("sigma",)), "HalfStudentT": (P.HalfStudentT, ("nu", "sigma")),
             "HalfCauchy": (P.HalfCauchy, ("beta",)), "Exponential": (P.Exponential, ("lam",))}
    if prior.name not in kinds or prior.name not in table or any(k not in args for k in table[prior.name][1]):
        return None
    cls, names = table[prior.name]
    size = max(a.size for a in args.values())
    return [cls(**{k: float(np.broadcast_to(args[k], (size,))[j]) for k in names}) for j in range(size)]


def _bambi_priors(bambi_model, fixed_names) -> dict:
    """bayesglmm prior overrides equal to a (built) bambi model's priors."""
    from . import priors as P
    from .design import INTERCEPT

    parts = bambi_model.parameters if hasattr(type(bambi_model), "parameters") else bambi_model.components
    comp = parts[bambi_model.family.likelihood.parent]
    out, skipped = {}, []
    coef = ("Normal", "StudentT")
    scale = ("HalfNormal", "HalfStudentT", "HalfCauchy", "Exponential")
    if comp.intercept_term is not None:
        got = _translate(comp.intercept_term.prior, coef)
        if got:
            # bambi centres the other columns when there are any (center_predictors, its default):
            # its intercept prior is then on the intercept at the columns' means
            centred = getattr(bambi_model, "center_predictors", False) and comp.common_terms
            out[INTERCEPT] = P.CenteredIntercept(got[0]) if centred else got[0]
        else:
            skipped.append("Intercept")
    columns = [n for n in fixed_names if n != INTERCEPT]
    pos = 0
    for name, term in comp.common_terms.items():
        got = _translate(term.prior, coef)
        width = len(getattr(term, "levels", None) or [name])
        if got and len(got) in (1, width):
            for j in range(width):
                out[columns[pos + j]] = got[min(j, len(got) - 1)]
        else:
            skipped.append(name)
        pos += width
    for name, term in comp.group_specific_terms.items():
        sd = term.prior.args.get("sigma")
        got = _translate(sd, scale) if hasattr(sd, "args") else None
        if got:
            out[name] = got[0]
        else:
            skipped.append(name)
    for name, comp2 in parts.items():
        if name == "sigma" and getattr(comp2, "prior", None) is not None:
            got = _translate(comp2.prior, scale)
            if got:
                out["sigma"] = got[0]
            else:
                skipped.append("sigma")
        elif name != bambi_model.family.likelihood.parent and getattr(comp2, "prior", None) is not None:
            # a dispersion (negativebinomial's and gamma's alpha, beta_binomial's kappa): bambi's prior is on it,
            # bayesglmm's on 1/√it (priors["dispersion"]), a different parameter
            skipped.append(f"{name} (bayesglmm's prior is on 1/√{name}: priors['dispersion'])")
    if skipped:
        warnings.warn(f"bambi priors of {', '.join(skipped)} have no bayesglmm counterpart: "
                      "bayesglmm's defaults are used for them", UserWarning, stacklevel=3)
    return out


def from_bambi(bambi_model, priors: dict | None = None, correlated: bool = False, bambi_priors: bool = True):
    """The :class:`~bayesglmm.GLMM` of a bambi model (formula, data, family, link).

    Parameters
    ----------
    bambi_model : bambi.Model
    priors : dict, optional
        bayesglmm prior overrides, applied on top of the translated bambi priors.
    correlated : bool
        Write ``(1 + x | g)`` as a correlated block (lme4) rather than bambi's independent
        terms.
    bambi_priors : bool
        Use the bambi model's priors (default); False gives bayesglmm's defaults.

    Raises
    ------
    TypeError
        If the argument is not a bambi model.
    ValueError
        For a family or a distributional formula bayesglmm does not support.
    """
    from .glmm import GLMM

    formula = getattr(bambi_model, "formula", None)
    family = getattr(bambi_model, "family", None)
    if formula is None or family is None or not hasattr(formula, "main"):
        raise TypeError(f"from_bambi() takes a bambi.Model, got {type(bambi_model).__name__}")
    if getattr(formula, "additionals", None):
        raise ValueError(f"distributional sub-models are not supported: {list(formula.additionals)}")
    try:  # bambi's family names are bayesglmm's: get_family knows which it supports
        get_family(family.name)
    except ValueError:
        raise ValueError(f"bambi family {family.name!r} is not supported; supported: {', '.join(FAMILIES)}") from None
    parent = family.likelihood.parent
    link = family.link[parent].name
    main = formula.main if correlated else _uncorrelated(formula.main)
    model = GLMM(main, bambi_model.data, family=family.name, link=link, priors=priors)
    if not bambi_priors:
        return model
    if not getattr(bambi_model, "built", False):
        bambi_model.build()
    merged = {**_bambi_priors(bambi_model, model.design.fixed_names), **(priors or {})}
    return GLMM(main, bambi_model.data, family=family.name, link=link, priors=merged)
