"""lme4/bambi-style formulas → a parsed :class:`FormulaSpec`.

Only the mixed-model syntax is handled here: the response (``y``, ``p(s, n)``,
``cbind(s, f)``), the random-effect bars ``(expr | g)`` and ``(expr || g)``,
nested (``a/b``) and interaction (``a:b``) grouping factors, and ``offset(...)``. A column whose
name is not an identifier (a space, a symbol) is written in backticks, as formulae reads it:
``(1 | `my group`)``; names in any alphabet (``größe``) need none. Redundant brackets around a
random term or a sum of them (``((1 | g))``, ``((1 | g) + (1 | h))``) are dropped.
Everything inside the fixed part and inside a bar's left-hand side is handed,
as text, to `formulae <https://bambinos.github.io/formulae/>`_, which builds the
model matrices in :mod:`bayesglmm.design`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FormulaError", "RandomTerm", "FormulaSpec", "parse_formula"]


class FormulaError(ValueError):
    """A formula that cannot be parsed."""


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect block as written, after expanding ``||`` and ``/``.

    Attributes
    ----------
    expr : str
        The left-hand side of the bar, e.g. ``"1 + x"`` (a formulae expression).
    group : tuple of str
        The grouping factor's columns; more than one for an interaction ``a:b``.
    correlated : bool
        False for the terms produced by ``||`` (and for ``0 + x`` pieces of it).
    """

    expr: str
    group: tuple[str, ...]
    correlated: bool = True

    @property
    def group_label(self) -> str:
        """The columns joined by ``:``; a column whose name holds ``:`` or ``/`` in backticks, so that
        the label stays unambiguous."""
        return ":".join("`" + c + "`" if ":" in c or "/" in c else c for c in self.group)


@dataclass(frozen=True)
class FormulaSpec:
    """A formula split into its parts.

    Attributes
    ----------
    formula : str
        The formula as the user wrote it.
    response : tuple
        ``("name", expr)`` for a plain response, ``("p", successes, trials)`` or
        ``("cbind", successes, failures)`` for a binomial response with trials.
    fixed : str
        The fixed-effects right-hand side for formulae (``"1"`` if empty).
    random : tuple of RandomTerm
    offsets : tuple of str
        The expressions inside each ``offset(...)``.
    """

    formula: str
    response: tuple
    fixed: str
    random: tuple[RandomTerm, ...]
    offsets: tuple[str, ...]


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` where it is not inside brackets, backticks or quotes."""
    parts, depth, start, i, quote = [], 0, 0, 0, None
    while i < len(text):
        ch = text[i]
        if quote is not None:  # inside `a name` or a string: brackets and separators are text
            if ch == quote:
                quote = None
        elif ch in "`\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced ')' at position {i} in {text!r}")
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    if quote == "`":
        raise FormulaError(f"unbalanced '`' in {text!r}: a column name in backticks needs a closing '`'")
    if quote is not None:
        raise FormulaError(f"unbalanced {quote} in {text!r}")
    if depth != 0:
        raise FormulaError(f"unbalanced '(' in {text!r}")
    parts.append(text[start:])
    return parts


def _call_args(chunk: str, name: str) -> list[str] | None:
    """Return the top-level arguments of ``name(...)`` if ``chunk`` is that call."""
    m = re.fullmatch(rf"\s*{name}\s*\((.*)\)\s*", chunk, flags=re.S)
    if not m:
        return None
    return [a.strip() for a in _split_top(m.group(1), ",")]


def _strip_parens(chunk: str) -> str | None:
    """``"(a | b)"`` → ``"a | b"``, ``"((a | b))"`` → ``"a | b"`` (redundant brackets are dropped);
    None if ``chunk`` is not one bracketed group."""
    s = chunk.strip()
    if not (s.startswith("(") and s.endswith(")")):
        return None
    if _closing(s) != len(s) - 1:
        return None  # e.g. "(a) + (b)"
    inner = s[1:-1]
    deeper = _strip_parens(inner)
    return inner if deeper is None else deeper


def _closing(s: str) -> int:
    """Position of the ')' that closes the '(' at ``s[0]`` (backticks and quotes skipped)."""
    depth, quote = 0, None
    for i, ch in enumerate(s):
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "`\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


#: a column name written without backticks: an identifier (letters of any alphabet, digits, '_', '.')
_NAME = re.compile(r"^(?:[^\W\d]|\.)[\w.]*$")


def _parse_group(text: str, formula: str) -> list[tuple[str, ...]]:
    """``g`` → [(g,)]; ``a:b`` → [(a, b)]; ``a/b`` → [(a,), (a, b)]; a column whose name is not an
    identifier goes in backticks: ``(1 | `my group`)`` → [("my group",)]."""
    text = text.strip()
    groups, prefix = [], ()
    for piece in _split_top(text, "/"):
        cols = []
        for c in _split_top(piece, ":"):
            c = c.strip()
            if len(c) > 2 and c.startswith("`") and c.endswith("`") and "`" not in c[1:-1]:
                cols.append(c[1:-1])
            elif _NAME.match(c):
                cols.append(c)
            else:
                raise FormulaError(
                    f"grouping factor {text!r} in {formula!r}: expected column names joined by "
                    "':' (interaction) or '/' (nesting), e.g. 'g', 'farm/group' or 'a:b'; a name with "
                    f"spaces or symbols goes in backticks, e.g. '`my group`' (got {c!r})"
                )
        prefix = prefix + tuple(cols)
        groups.append(prefix)
    return groups


def _parse_bar(inner: str, formula: str) -> list[RandomTerm]:
    double = _split_top(inner, "||")
    if len(double) == 2:
        lhs, grp = double
        groups = _parse_group(grp, formula)
        pieces = [p.strip() for p in _split_top(lhs, "+")]
        has_int = "0" not in pieces and "-1" not in lhs.replace(" ", "")
        others = [p for p in pieces if p not in ("1", "0", "") and not p.startswith("-")]
        exprs = (["1"] if has_int else []) + [f"0 + {p}" for p in others]
        if not exprs:
            raise FormulaError(f"random term ({inner}) in {formula!r} has no effects")
        return [RandomTerm(e, g, correlated=False) for g in groups for e in exprs]
    single = _split_top(inner, "|")
    if len(single) != 2:
        return []
    lhs, grp = single
    if not lhs.strip():
        raise FormulaError(f"random term ({inner}) in {formula!r}: nothing before '|'")
    return [RandomTerm(lhs.strip(), g, correlated=True) for g in _parse_group(grp, formula)]


_LITERAL = re.compile(r"(`[^`]*`|\"[^\"]*\"|'[^']*')|(?<![\w.])((?:\d+\.?\d*|\.\d+)[eE][+-]?\d+)(?![\w.])")


def plain_numbers(text: str) -> str:
    """``text`` with every number written in scientific notation (``1e9``, ``2.5e-3``) written out in
    decimals, outside backticks and quotes: formulae's parser does not read exponents (``I(x * 1e9)``
    gave "Expect ')' after arguments")."""
    from decimal import Decimal

    def sub(m):
        if m.group(1) is not None:
            return m.group(1)
        return format(Decimal(m.group(2)), "f")

    return _LITERAL.sub(sub, text)


def parse_formula(formula: str) -> FormulaSpec:
    """Split an lme4-style formula into response, fixed part, random terms and offsets.

    Parameters
    ----------
    formula : str
        E.g. ``"y ~ x + (1 + x | g)"``, ``"cbind(s, n - s) ~ period + (1 | herd)"``,
        ``"y ~ x + (1 | farm/group) + offset(np.log(t))"``.

    Returns
    -------
    FormulaSpec

    Raises
    ------
    FormulaError
        If there is no single ``~``, the brackets or backticks are unbalanced, or a random term
        is malformed (its grouping factor must be column names, in backticks when not identifiers).
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string such as 'y ~ x + (1 | g)', got {type(formula).__name__}")
    user_formula, formula = formula, plain_numbers(formula)
    sides = _split_top(formula, "~")
    if len(sides) != 2 or not sides[0].strip() or not sides[1].strip():
        raise FormulaError(f"formula {formula!r} must have the form 'response ~ predictors'")
    lhs, rhs = sides[0].strip(), sides[1].strip()

    for name in ("p", "cbind"):
        args = _call_args(lhs, name)
        if args is not None:
            if len(args) != 2 or not all(args):
                raise FormulaError(f"response {lhs!r}: {name}() takes exactly two arguments")
            response = (name, args[0], args[1])
            break
    else:
        response = ("name", lhs)

    fixed, random, offsets = [], [], []
    chunks = _split_top(rhs, "+")
    while chunks:
        chunk = chunks.pop(0)
        if not chunk.strip():
            raise FormulaError(f"formula {formula!r} has an empty term (a stray '+')")
        inner = _strip_parens(chunk)
        bars = _parse_bar(inner, formula) if inner is not None else []
        if bars:
            random.extend(bars)
            continue
        parts = _split_top(inner, "+") if inner is not None else []
        if len(parts) > 1 and any(_strip_parens(p) is not None and "|" in p for p in parts):
            chunks[:0] = parts  # "((1 | g) + (0 + x | g))": the bracketed terms, one by one
            continue
        off = _call_args(chunk, "offset")
        if off is not None:
            if len(off) != 1 or not off[0]:
                raise FormulaError(f"{chunk.strip()!r}: offset() takes one expression")
            offsets.append(off[0])
            continue
        if "|" in re.sub(r"`[^`]*`", "", chunk):  # a '|' inside a backticked name is part of the name
            raise FormulaError(
                f"term {chunk.strip()!r} in {formula!r}: a random term must be in brackets, "
                "e.g. '(1 + x | g)'"
            )
        fixed.append(chunk.strip())
    return FormulaSpec(
        formula=user_formula,
        response=response,
        fixed=" + ".join(fixed) if fixed else "1",
        random=tuple(random),
        offsets=tuple(offsets),
    )
