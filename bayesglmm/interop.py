"""Interoperability with bambi: :func:`from_bambi` turns a bambi model into a :class:`GLMM`.

A bambi user keeps their model and gets bayesglmm's comparison of methods on it::

    bmodel = bambi.Model("p(incidence, size) ~ period + (1 | herd)", data, family="binomial")
    cmp = bayesglmm.compare(bayesglmm.from_bambi(bmodel))

What carries over: the main formula, the data (bambi's copy, with its categorical
columns), the family and the link. bambi 0.21's group-specific terms are uncorrelated,
so ``(1 + x | g)`` becomes bayesglmm's ``(1 + x || g)`` — the same model; pass
``correlated=True`` to get lme4's correlated version instead. bambi's priors do not
carry over: the GLMM gets bayesglmm's default priors (proper on every variance
component) unless ``priors=`` is given. Distributional sub-models (``sigma ~ x``) and
families other than Gaussian, Bernoulli, binomial and Poisson are refused.
"""

from __future__ import annotations


__all__ = ["from_bambi"]

_FAMILIES = ("gaussian", "bernoulli", "binomial", "poisson")


def _uncorrelated(formula: str) -> str:
    """Every ``(expr | g)`` bar of a formula as ``(expr || g)``."""
    out, depth = [], 0
    for i, ch in enumerate(formula):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "|" and depth > 0 and formula[i - 1:i] != "|" and formula[i + 1:i + 2] != "|":
            out.append("||")
        else:
            out.append(ch)
    return "".join(out)


def from_bambi(bambi_model, priors: dict | None = None, correlated: bool = False):
    """The :class:`~bayesglmm.GLMM` of a bambi model (formula, data, family, link).

    Parameters
    ----------
    bambi_model : bambi.Model
    priors : dict, optional
        bayesglmm prior overrides (bambi's priors are not translated).
    correlated : bool
        Write ``(1 + x | g)`` as a correlated block (lme4) rather than bambi's independent
        terms.

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
    if family.name not in _FAMILIES:
        raise ValueError(f"bambi family {family.name!r} is not supported; supported: {', '.join(_FAMILIES)}")
    parent = family.likelihood.parent
    link = family.link[parent].name
    main = formula.main if correlated else _uncorrelated(formula.main)
    return GLMM(main, bambi_model.data, family=family.name, link=link, priors=priors)
