"""Formula + data → a frozen :class:`Design`, validated against the family.

The :class:`Design` is the one description of a model's data that every engine
uses: the Bayesian backend and the frequentist engines read it and never re-parse
the formula or change it.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from formulae import design_matrices, model_description
from formulae.parser import ParseError

from .families import Family
from .formula import FormulaError, FormulaSpec, parse_formula
from .scaling import full_rank

__all__ = ["Design", "RandomBlock", "NewData", "make_design", "distinct_groups", "INTERCEPT"]

INTERCEPT = "(Intercept)"
_NAMESPACE = {"np": np, "log": np.log, "exp": np.exp, "sqrt": np.sqrt, "log1p": np.log1p}
#: a name written without backticks (letters of any alphabet, digits, '_', '.'), a `backticked name`,
#: or a string literal (skipped: not a name)
_TOKEN = re.compile(r"(\"[^\"]*\"|'[^']*')|`([^`]*)`|((?:[^\W\d]|\.)[\w.]*)")
#: formulae names its intercept "Intercept": a data column of that name is handed to formulae under
#: this name (its term would otherwise replace the intercept), and its labels are given back by _rename
_HIDDEN_INTERCEPT = "Intercept__bayesglmm_column"


def _rename(label: str) -> str:
    """formulae's label → ours: its intercept is "(Intercept)", a column named "Intercept" keeps its name."""
    return INTERCEPT if label == "Intercept" else label.replace(_HIDDEN_INTERCEPT, "Intercept")


@dataclass(frozen=True, eq=False)
class RandomBlock:
    """One random-effect block ``(terms | group)``.

    For observation i in level ``index[i]`` the block adds
    ``Xr[i] @ b[index[i]]`` to the linear predictor, where ``b`` has shape
    (n_levels, n_terms) and its rows are independent draws from N(0, Σ).

    Attributes
    ----------
    group : str
        The grouping factor's label: a column (``"herd"``) or an interaction
        of columns (``"farm:group"``, made by nesting ``farm/group``).
    terms : tuple of str
        The effects in this block, e.g. ``("(Intercept)", "Days")``.
    levels : tuple of str
        The grouping factor's levels in natural order: numbers (and numeric-looking strings)
        by value, other labels with their digit runs compared as numbers (``"g2" < "g10"``),
        a pandas Categorical in its category order (categories not in the data are no level).
        An interaction's (``a:b``, and the inner factor of ``a/b``) are the pairs of values seen,
        in ``a``'s order then ``b``'s, labelled ``"a:b"``; a part holding ``:`` is in backticks
        (``"`1:2`:3"`` and ``"1:`2:3`"`` are two levels).
    index : ndarray of int, shape (n,)
        Level of each observation (position in ``levels``).
    Xr : ndarray, shape (n, n_terms)
        The per-term covariates (a column of ones for an intercept).
    correlated : bool
        Whether Σ is a full covariance (LKJ prior on its correlation) or diagonal.
    """

    group: str
    terms: tuple[str, ...]
    levels: tuple[str, ...]
    index: np.ndarray = field(repr=False)
    Xr: np.ndarray = field(repr=False)
    correlated: bool = True

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_terms(self) -> int:
        return len(self.terms)

    @property
    def label(self) -> str:
        """A unique name such as ``"1|herd"`` or ``"1+Days|Subject"``."""
        short = ["1" if t == INTERCEPT else t for t in self.terms]
        return f"{'+'.join(short)}|{self.group}"

    @property
    def has_correlation(self) -> bool:
        return self.correlated and self.n_terms > 1

    def Z(self) -> sp.csc_matrix:
        """The block's model matrix, shape (n, n_levels * n_terms).

        Columns are ordered level-major as in lme4: (level 1: term 1..k), (level 2: …).
        """
        n, k = self.Xr.shape
        rows = np.repeat(np.arange(n), k)
        cols = (self.index[:, None] * k + np.arange(k)[None, :]).ravel()
        return sp.csc_matrix((self.Xr.ravel(), (rows, cols)), shape=(n, self.n_levels * k))


@dataclass(frozen=True, eq=False)
class Design:
    """A model's data in the form every engine uses. Immutable; arrays are read-only.

    Attributes
    ----------
    formula : str
    response : str
        The response's label (the successes' expression for a binomial).
    y : ndarray, shape (n,)
        Response (successes for the binomial).
    trials : ndarray, shape (n,) or None
        Binomial trials; None for other families.
    offset : ndarray, shape (n,)
        Sum of the ``offset(...)`` terms (zeros if none).
    X : ndarray, shape (n, p)
        Fixed-effects model matrix.
    fixed_names : tuple of str
        Column labels of ``X`` (``"(Intercept)"``, ``"x"``, ``"period[2]"``, …).
    random : tuple of RandomBlock
    n_dropped : int
        Rows dropped for missing values (only with ``missing="drop"``).
    data : pandas.DataFrame
        The rows used (a copy; the user's frame is never modified), without duplicated columns
        the formula does not use.
    """

    formula: str
    response: str
    y: np.ndarray = field(repr=False)
    trials: np.ndarray | None = field(repr=False)
    offset: np.ndarray = field(repr=False)
    X: np.ndarray = field(repr=False)
    fixed_names: tuple[str, ...]
    random: tuple[RandomBlock, ...]
    n_dropped: int = 0
    data: pd.DataFrame = field(repr=False, default=None)

    @property
    def nobs(self) -> int:
        return self.y.shape[0]

    @property
    def groups(self) -> tuple[str, ...]:
        """Distinct grouping factors, in order of appearance."""
        return tuple(dict.fromkeys(b.group for b in self.random))

    def Z(self) -> sp.csc_matrix:
        """All random-effect model matrices side by side, shape (n, q)."""
        if not self.random:
            return sp.csc_matrix((self.nobs, 0))
        return sp.hstack([b.Z() for b in self.random], format="csc")

    def evaluate_new(self, new_data: pd.DataFrame, allow_new_levels: bool = True,
                     random_effects: bool = True) -> "NewData":
        """The model matrices of ``new_data``, encoded exactly as the fitting data were.

        Categorical columns keep the fitted levels and reference (formulae's
        ``evaluate_new_data``); a categorical level not seen in fitting is an error.

        Parameters
        ----------
        new_data : pandas.DataFrame
            Needs every predictor, offset and grouping column (not the response).
        allow_new_levels : bool
            A grouping level not seen in fitting gets index −1 (its random effect is 0:
            the population-level prediction); with False it is an error naming the level.
        random_effects : bool
            False: the fixed-effect matrices and offset only (a population-level prediction, lme4's
            ``re.form = NA``): ``new_data`` needs no grouping column, and ``index``/``Xr`` are empty.

        Returns
        -------
        NewData

        Raises
        ------
        ValueError
            Besides missing columns and values: when no row's grouping level was seen in fitting
            and the column holds another kind of values than the fitting data did (strings where it
            held numbers): a column read with another dtype, not new groups.

        Notes
        -----
        A grouping level is matched by value, not by dtype: ``1``, ``1.0`` and ``"1"`` are the
        level 1 of a column fitted with integers (what ``missing="drop"`` or a CSV round trip
        make of one), a pandas nullable or Categorical column matches the plain one, and an
        interaction ``a:b`` matches each column so. Strings match strings exactly (``"01"`` is not
        ``"1"``); see :func:`_level_matcher`.
        """
        if not isinstance(new_data, pd.DataFrame):
            raise TypeError(f"new_data must be a pandas DataFrame, got {type(new_data).__name__}")
        if len(new_data) == 0:
            raise ValueError("new_data has no rows: nothing to predict")
        spec = parse_formula(self.formula)
        terms, _, groups = _used_names(spec)
        needed = terms | groups if random_effects else terms
        for c in sorted(c for c in needed if c in self.data.columns):
            if c not in new_data.columns:
                raise _missing_column(c, new_data)
        new_data = _check_columns(new_data, needed, terms, "new_data")
        needed = [c for c in new_data.columns if c in needed]
        new_data, _ = _check_finite(new_data, needed, "raise", hint="new_data must be complete")
        formulae_data = (new_data.rename(columns={"Intercept": _HIDDEN_INTERCEPT})
                         if "Intercept" in new_data.columns else new_data)

        def encode(expr, where):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mat = _common(expr, self.data, where).evaluate_new_data(formulae_data)
                    return np.asarray(mat.design_matrix, dtype=float)
            except ValueError as err:
                numeric = pd.api.types.is_numeric_dtype
                other = [c for c in sorted(_expr_names(expr)) if c in self.data.columns and c in new_data.columns
                         and numeric(self.data[c]) != numeric(new_data[c])]
                hint = "".join(f"; new_data[{c!r}] has dtype {new_data[c].dtype} where the fitting data had "
                               f"{self.data[c].dtype}: convert it" for c in other)
                raise ValueError(f"new_data, {where}: {str(err).rstrip('.') if hint else err}{hint}") from None

        X = encode(spec.fixed, "fixed effects") if self.fixed_names else np.zeros((len(new_data), 0))
        _require_finite(X, self.fixed_names, "in new_data, the fixed-effect column", new_data.index)
        offset = np.zeros(len(new_data))
        for expr in spec.offsets:
            offset = offset + _eval(expr, new_data, "in new_data, the offset")
        indices, Xrs = [], []
        for term, block in zip(spec.random if random_effects else (), self.random):
            index, differs = _new_levels(block, term.group, self.data, new_data)
            if differs and np.all(index < 0):
                c, fit_values, new_values = differs[0]
                raise ValueError(
                    f"no row of new_data has a level of {block.group!r} seen in fitting, and new_data[{c!r}] "
                    f"holds {'/'.join(sorted(_value_kinds(new_values)))} values (dtype {new_data[c].dtype}, e.g. "
                    f"{new_values[0]!r}) where the fitting data held {'/'.join(sorted(_value_kinds(fit_values)))} "
                    f"values (dtype {self.data[c].dtype}, e.g. {fit_values[0]!r}): convert new_data[{c!r}] to the "
                    "fitting data's values; for groups not in the fit, predict with random_effects=False")
            if not allow_new_levels and np.any(index < 0):
                unseen = list(dict.fromkeys(
                    ":".join(str(v) for v in row) for row, k in
                    zip(new_data[list(term.group)].itertuples(index=False), index) if k < 0))
                raise ValueError(f"new_data has level(s) of {block.group!r} not seen in fitting: "
                                 f"{', '.join(map(repr, unseen[:5]))}; pass allow_new_levels=True for the "
                                 "population-level prediction")
            indices.append(index)
            Xr = encode(term.expr, f"random term ({term.expr} | {term.group_label})")
            _require_finite(Xr, block.terms, f"in new_data, the random term of {block.group!r}", new_data.index)
            Xrs.append(Xr)
        return NewData(X=X, offset=offset, index=tuple(indices), Xr=tuple(Xrs))


@dataclass(frozen=True)
class NewData:
    """Model matrices of new data (see :meth:`Design.evaluate_new`).

    ``index[k]`` gives each row's level in random block ``k`` (−1: unseen); ``Xr[k]``
    the block's covariates.
    """

    X: np.ndarray
    offset: np.ndarray
    index: tuple
    Xr: tuple

    def eta(self, beta, b=None) -> np.ndarray:
        """Linear predictor; ``b`` (one (n_levels, n_terms) array per block) or None for the population level."""
        eta = self.offset + self.X @ np.asarray(beta, dtype=float)
        for k, (index, Xr) in enumerate(zip(self.index, self.Xr)):
            if b is not None:
                bb = np.vstack([np.asarray(b[k]), np.zeros((1, Xr.shape[1]))])  # row −1: unseen level → 0
                eta = eta + np.sum(bb[index] * Xr, axis=1)
        return eta


# ---------------------------------------------------------------- helpers
def _missing_column(name, data) -> KeyError:
    cols = ", ".join(map(str, list(data.columns)[:20]))
    return KeyError(f"column {name!r} is not in the data; available columns: {cols}")


def _replace_name(expr: str, name: str, new: str) -> str:
    """``expr`` with every use of the variable ``name`` (plain or in backticks) renamed ``new``."""
    def sub(m):
        if m.group(1) is None and (m.group(2) == name or m.group(3) == name):
            return new
        return m.group(0)

    return _TOKEN.sub(sub, expr)


def _formulae_view(expr: str, data: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """``expr`` and ``data`` as formulae should see them: a column named ``Intercept`` renamed (see
    :data:`_HIDDEN_INTERCEPT`), so that ``y ~ Intercept`` is the intercept plus that column."""
    if "Intercept" not in data.columns:
        return expr, data
    new = _replace_name(expr, "Intercept", _HIDDEN_INTERCEPT)
    if new == expr:
        return expr, data
    return new, data.rename(columns={"Intercept": _HIDDEN_INTERCEPT})


def _common(expr: str, data: pd.DataFrame, where: str):
    """formulae's common-effects matrix for ``expr`` with clear errors."""
    expr, data = _formulae_view(expr, data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return design_matrices(expr, data, na_action="error", extra_namespace=_NAMESPACE).common
    except ParseError as err:
        raise FormulaError(f"cannot parse {where} {expr!r}: {err}") from None
    except KeyError as err:
        raise _missing_column(err.args[0], data) from None
    except NameError as err:
        raise FormulaError(f"in {where} {expr!r}: {err}") from None


def _rows_text(bad: np.ndarray, rows) -> str:
    """``"2 rows (index 3, 17)"``: how many and the first few index labels of the rows where ``bad``."""
    pos = np.flatnonzero(bad)
    labels = list(rows[pos[:5]]) if rows is not None else pos[:5].tolist()
    more = ", …" if len(pos) > 5 else ""
    return f"{len(pos)} row(s) (index {', '.join(map(str, labels))}{more})"


def _require_finite(values: np.ndarray, names, where: str, rows=None) -> None:
    """A value that an expression made NaN or ±inf (``np.log(0)``) is an error naming it, before an
    engine meets it as an unexplained linear-algebra failure."""
    values = np.asarray(values, dtype=float).reshape(len(values), -1)
    finite = np.isfinite(values)
    if finite.all():
        return
    j = int(np.flatnonzero(~finite.all(axis=0))[0])
    raise ValueError(f"{where} {names[j]!r} is NaN or infinite in {_rows_text(~finite[:, j], rows)}, e.g. the "
                     "log of 0 or of a negative number: drop or fix those rows, or change the expression")


def _eval(expr: str, data: pd.DataFrame, where: str, rows=None) -> np.ndarray:
    """Evaluate a response or offset expression to a finite float vector (``rows``: the index labels
    reported when it is not finite; default the data's index)."""
    expr = expr.strip()
    rows = data.index if rows is None else rows
    if expr in data.columns:
        col = data[expr]
        if col.dtype == bool:
            return col.to_numpy(dtype=float)
        if not pd.api.types.is_numeric_dtype(col):
            raise TypeError(f"{where} column {expr!r} must be numeric, got dtype {col.dtype}"
                            + (f"; convert it with pd.to_numeric(df[{expr!r}])" if col.dtype == object else ""))
        out = col.to_numpy(dtype=float, na_value=np.nan)
    else:
        try:
            out = np.full(len(data), float(expr))
        except ValueError:
            if _TOKEN.fullmatch(expr) and not expr.startswith(("'", '"')):
                name = expr[1:-1] if expr.startswith("`") else expr
                if name not in data.columns:
                    raise _missing_column(name, data) from None
            mat = _common(f"0 + I({expr})", data, where)
            out = np.asarray(mat.design_matrix, dtype=float)[:, 0]
    _require_finite(out, [expr], where, rows)
    return out


def _expr_names(expr: str) -> set[str]:
    """The variables ``expr`` uses, as formulae reads them: names in backticks, in any alphabet,
    inside calls (``np.log(n)`` uses ``n``); function names and strings are not variables."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            names = set(model_description(expr).var_names)
    except Exception:  # formulae cannot parse it: building the matrices says why; meanwhile, every token
        names = {m.group(2) if m.group(2) is not None else m.group(3)
                 for m in _TOKEN.finditer(expr) if m.group(1) is None}
    names.discard("")
    names.discard(None)
    return names


def _used_names(spec: FormulaSpec) -> tuple[set, set, set]:
    """The names a formula uses: (in the fixed and random terms and offsets, in the response,
    as grouping factors)."""
    terms = set()
    for expr in (spec.fixed, *(t.expr for t in spec.random)):
        terms |= _expr_names(expr)
    for expr in spec.offsets:
        terms |= _expr_names(f"I({expr})")
    response = set()
    for expr in spec.response[1:]:
        response |= _expr_names(f"I({expr})")
    return terms, response, {c for t in spec.random for c in t.group}


def _referenced_columns(spec: FormulaSpec, data: pd.DataFrame) -> list[str]:
    """The data's columns the formula uses, once each, in the data's order."""
    names = set().union(*_used_names(spec))
    return list(dict.fromkeys(c for c in data.columns if c in names))


def _kind(v) -> str:
    """``"number"`` (bools too: True == 1), ``"string"``, or the type's name."""
    return ("number" if isinstance(v, (bool, int, float, np.bool_, np.number)) else
            "string" if isinstance(v, str) else type(v).__name__)


def _value_kinds(values) -> set[str]:
    return {_kind(v) for v in values}


def _check_columns(data: pd.DataFrame, used: set, values: set, what: str = "data") -> pd.DataFrame:
    """``data`` with columns formulae can read, or an error naming the column and the remedy.

    A name the formula uses held by two columns is ambiguous (an error); duplicated columns the
    formula does not use are left out. A column used in a term (``values``) must be numbers,
    strings, booleans or a Categorical: dates, and numbers stored as dtype object, are errors
    saying how to convert them (grouping columns may hold anything: their levels are labels).
    """
    dup = list(dict.fromkeys(data.columns[data.columns.duplicated()]))
    clash = [c for c in dup if c in used]
    if clash:
        raise ValueError(f"{what} has more than one column named {', '.join(map(repr, clash))}, which the formula "
                         "uses: rename or drop the duplicates (df.loc[:, ~df.columns.duplicated()] keeps the first)")
    if dup:  # not used by the formula: not needed
        data = data.loc[:, ~data.columns.isin(dup)]
    for c in (c for c in data.columns if c in values):
        dtype = data[c].dtype
        if (pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype)
                or isinstance(dtype, pd.PeriodDtype)):
            raise TypeError(f"column {c!r} holds dates or times (dtype {dtype}): a formula term needs numbers or "
                            f"categories; encode it as numbers, e.g. days since the first date "
                            f"((df[{c!r}] - df[{c!r}].min()).dt.days), or as categories (df[{c!r}].astype(str))")
        if dtype == object:
            values = data[c].dropna().unique()
            kinds = _value_kinds(values)
            if kinds <= {"string"}:
                continue
            if all(isinstance(v, (bool, np.bool_)) for v in values):
                raise TypeError(f"column {c!r} holds True/False stored as dtype object: convert it with "
                                f"df[{c!r}].astype(bool)")
            if kinds == {"number"}:
                raise TypeError(f"column {c!r} holds numbers stored as dtype object: convert it with "
                                f"pd.to_numeric(df[{c!r}]) (or, for categories, df[{c!r}].astype(str))")
            raise TypeError(f"column {c!r} (dtype object) holds values of type {', '.join(sorted(kinds))}: a formula "
                            f"term needs numbers or strings; convert it with pd.to_numeric(df[{c!r}]) for numbers "
                            f"or df[{c!r}].astype(str) for categories (dates: encode them as numbers)")
    return data


def _factor(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """One column's levels in natural order (see :class:`RandomBlock`): each row's code and the labels."""
    if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(col):
        # a Categorical keeps its category order (unused categories are not levels); numbers sort numerically
        codes, uniques = pd.factorize(col, sort=True)
        return np.asarray(codes, dtype=np.int64), [str(u) for u in uniques]
    labels = col.astype(str).to_numpy(dtype=object).astype(str)
    uniques, codes = np.unique(labels, return_inverse=True)
    order = sorted(range(len(uniques)), key=lambda k: natural_key(uniques[k]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes.reshape(-1)], [str(uniques[k]) for k in order]


def _part_label(label: str) -> str:
    """One column's part of an interaction level's label: in backticks (a backtick doubled) when it holds
    ':' or '`', so that ``("1:2", "3")`` and ``("1", "2:3")`` are ``"`1:2`:3"`` and ``"1:`2:3`"``."""
    return "`" + label.replace("`", "``") + "`" if ":" in label or "`" in label else label


def group_index(data: pd.DataFrame, cols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Level labels in natural order (see :class:`RandomBlock`) and each row's level.

    An interaction ``a:b`` (and nesting ``a/b``) has a level per distinct pair of values, ordered by
    ``a``'s order, then ``b``'s, labelled ``"a-label:b-label"`` (see :func:`_part_label`)."""
    for c in cols:
        if c not in data.columns:
            raise _missing_column(c, data)
    parts = [_factor(data[c]) for c in cols]
    if len(cols) == 1:
        codes, labels = parts[0]
        return np.asarray(labels, dtype=object), codes
    combos, index = np.unique(np.column_stack([codes for codes, _ in parts]), axis=0, return_inverse=True)
    labels = [":".join(_part_label(parts[j][1][code]) for j, code in enumerate(row)) for row in combos]
    return np.asarray(labels, dtype=object), index.reshape(-1).astype(np.int64)


def natural_key(label: str):
    """Sort key for level labels in natural order: ``"2" < "10"``, ``"a2" < "a10"``, ``"1:2" < "1:10"``;
    a label that is one number sorts by its value (``"-1.5" < "2"``)."""
    try:
        return (0, float(label), ())
    except ValueError:
        parts = re.split(r"(\d+)", label)
        return (1, 0.0, tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in parts if t))


_AMBIGUOUS = object()


def _as_number(text: str):
    try:
        x = float(text.strip())
    except ValueError:
        return None
    return x if np.isfinite(x) else None


def _python(v):
    return v.item() if isinstance(v, np.generic) else v


def _level_matcher(fit_values):
    """A function from a value of new data to the equal value seen in fitting (None if there is none).

    Equal means the same value, whatever the dtype: 1, 1.0 and np.int64(1) are one level, as are
    True and 1 (as in NumPy). Across kinds a string that reads as a number matches that number
    (``"1"``, ``"1.0"`` and 1), and a number matches a fitted string that reads as it; a string also
    matches a fitted value whose ``str`` it is (``"True"``). Within strings the match is exact
    (``"01"`` is not ``"1"``). When two fitted values read as the same number or text (``"1"`` and
    ``"01"``) that reading matches neither.
    """
    exact, by_text, by_number = {}, {}, {}

    def put(table, key, u):
        table[key] = u if table.get(key, u) == u else _AMBIGUOUS

    for u in fit_values:
        kind = _kind(u)
        exact.setdefault((kind, u), u)
        if kind == "string":
            x = _as_number(u)
            if x is not None:
                put(by_number, x, u)
        else:
            put(by_text, str(u), u)

    def match(v):
        kind = _kind(v)
        try:
            hit = exact.get((kind, v))
        except TypeError:  # unhashable
            hit = None
        if hit is None and kind == "string":
            hit = by_text.get(v)
            x = _as_number(v) if hit is None else None
            if x is not None:
                hit = exact.get(("number", x))
        elif hit is None and kind == "number":
            hit = by_number.get(float(v))
            if hit is None:
                hit = exact.get(("string", str(v)))
        elif hit is None:
            hit = exact.get(("string", str(v)))
        return None if hit is _AMBIGUOUS else hit

    return match


def _new_levels(block: "RandomBlock", cols: tuple[str, ...], fit: pd.DataFrame, new: pd.DataFrame):
    """Each row of ``new``'s level of ``block`` (−1 if none), matching values as :func:`_level_matcher`,
    and the columns whose kind of values (numbers, strings, …) differs from the fitting data's:
    ``[(column, fitted distinct values, new distinct values)]``."""
    fit_codes, new_codes, sizes, differs = [], [], [], []
    for c in cols:
        codes, uniques = pd.factorize(fit[c].astype(object))
        uniques = [_python(v) for v in uniques]
        position = {}
        for k, u in enumerate(uniques):
            position.setdefault((_kind(u), u), k)
        match = _level_matcher(uniques)
        codes_new, uniques_new = pd.factorize(new[c].astype(object))
        uniques_new = [_python(v) for v in uniques_new]
        lut = np.empty(len(uniques_new) + 1, dtype=np.int64)  # last entry: a NaN code (−1) in new data
        lut[-1] = -1
        for k, v in enumerate(uniques_new):
            hit = match(v)
            lut[k] = -1 if hit is None else position[(_kind(hit), hit)]
        fit_codes.append(np.asarray(codes, dtype=np.int64))
        new_codes.append(lut[codes_new])
        sizes.append(len(uniques))
        if _value_kinds(uniques_new) - _value_kinds(uniques):
            differs.append((c, uniques, uniques_new))
    # one integer per combination of the columns' values (mixed radix, renumbered after each column so
    # that it stays below the number of rows), fitted → its level
    fit_key, new_key, unmatched = np.zeros(len(fit), np.int64), np.zeros(len(new), np.int64), np.zeros(len(new), bool)
    for codes, codes_new, size in zip(fit_codes, new_codes, sizes):
        both, _ = pd.factorize(np.concatenate([fit_key * size + codes, new_key * size + np.maximum(codes_new, 0)]))
        fit_key, new_key = both[:len(fit)].astype(np.int64), both[len(fit):].astype(np.int64)
        unmatched |= codes_new < 0
    keys, first = np.unique(fit_key, return_index=True)
    pos = np.clip(np.searchsorted(keys, new_key), 0, len(keys) - 1)
    found = ~unmatched & (keys[pos] == new_key)
    index = np.where(found, np.asarray(block.index)[first][pos], -1).astype(np.int64)
    return index, differs


def _check_finite(data: pd.DataFrame, cols: list[str], missing: str,
                  hint: str = "clean them or pass missing='drop'") -> tuple[pd.DataFrame, int]:
    """Rows with NaN/±inf in ``cols``: an error naming the columns, or (``missing="drop"``) ``data``
    without them, with a warning; returns the rows kept (the index unchanged) and how many were dropped."""
    bad = np.zeros(len(data), dtype=bool)
    per_col = {}
    for c in cols:
        col = data[c]
        mask = col.isna().to_numpy().copy()
        if pd.api.types.is_numeric_dtype(col) and col.dtype != bool:
            mask |= ~np.isfinite(col.to_numpy(dtype=float, na_value=np.nan))
        if mask.any():
            per_col[c] = int(mask.sum())
            bad |= mask
    if not per_col:
        return data, 0
    what = ", ".join(f"{c!r} ({k} rows)" for c, k in per_col.items())
    if missing == "raise":
        raise ValueError(
            f"missing or infinite values in column(s) {what}; {hint}"
        )
    warnings.warn(f"dropping {int(bad.sum())} of {len(data)} rows with missing or infinite "
                  f"values in {what}", UserWarning, stacklevel=4)
    return data.loc[~bad], int(bad.sum())


def _readonly(a):
    if a is not None:
        a = np.ascontiguousarray(a)
        a.setflags(write=False)
    return a


# ---------------------------------------------------------------- main
def make_design(formula: str, data: pd.DataFrame, family: Family, missing: str = "raise") -> Design:
    """Build and validate the :class:`Design` of a GLMM.

    Parameters
    ----------
    formula : str
        lme4-style formula, e.g. ``"y ~ x + (1 + x | g)"``; see :func:`parse_formula`.
    data : pandas.DataFrame
        Not modified. Columns the formula uses are found wherever they appear: in backticks
        (``y ~ `my col` + x``), in any alphabet, inside calls (``np.log(n)``). Duplicated columns the
        formula does not use are left out of ``Design.data``.
    family : Family
        Used to read and check the response (0/1, counts, successes ≤ trials).
    missing : {"raise", "drop"}
        Rows with NaN/inf in a column the formula uses: raise (default) or drop
        them with a warning that states how many. A NaN or ±inf that an expression makes
        (``offset(np.log(n))`` with n = 0) is not missing data: it is always an error.

    Returns
    -------
    Design

    Raises
    ------
    FormulaError, KeyError, ValueError, TypeError
        Unparseable formula; a missing column; a value outside the family's support,
        a missing value, a grouping factor with one level, a rank-deficient X; a column the
        formula uses held by two columns of ``data``; dates, or numbers stored as dtype object,
        in a term (the error says how to convert them); an offset, response or model-matrix
        column that is NaN or infinite (naming it, with the first rows' index labels).
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if missing not in ("raise", "drop"):
        raise ValueError(f"missing must be 'raise' or 'drop', got {missing!r}")
    spec = parse_formula(formula)
    if len(data) == 0:
        raise ValueError("data has no rows")
    for term in spec.random:
        for c in term.group:
            if c not in data.columns:
                raise _missing_column(c, data)
    terms, response_names, group_names = _used_names(spec)
    if INTERCEPT in terms and INTERCEPT in data.columns:
        raise ValueError(f"the column {INTERCEPT!r} has the label of the model's intercept, so their coefficients "
                         f"could not be told apart: rename the column (df.rename(columns={{{INTERCEPT!r}: 'x0'}}))")
    plain = {e.strip() for e in spec.response[1:]}  # a response column itself is read (and checked) by _eval
    data = _check_columns(data, terms | response_names | group_names, terms | (response_names - plain))
    data, n_dropped = _check_finite(data, _referenced_columns(spec, data), missing)
    if len(data) == 0:
        raise ValueError(f"no rows left: each of the {n_dropped} rows has a missing or infinite value in a column "
                         f"the formula uses ({', '.join(map(repr, _referenced_columns(spec, data)))})")
    rows = data.index  # the user's labels of the rows used, for errors
    if n_dropped:
        data = data.reset_index(drop=True)

    # response
    kind = spec.response[0]
    if kind == "name":
        response = spec.response[1]
        y = _eval(response, data, "response", rows)
        trials = None
        if family.needs_trials:
            trials = np.ones_like(y)  # 0/1 responses: binomial with one trial, as glmer does
    else:
        response = spec.response[1]
        y = _eval(spec.response[1], data, "response", rows)
        second = _eval(spec.response[2], data, f"{kind}() second argument", rows)
        trials = second if kind == "p" else y + second
        if not family.needs_trials:
            raise ValueError(f"response {kind}(...) gives successes and trials: use "
                             f"family='binomial', not {family.name!r}")
    family.validate(y, trials, name=repr(response))

    # fixed effects
    common = _common(spec.fixed, data, "fixed effects")
    if common is None:  # "y ~ 0 + (1 | g)": lme4 fits it; the engines here need one column of X
        raise FormulaError(f"{formula!r} has no fixed effects (its fixed part is {spec.fixed!r}): keep the "
                           "intercept ('y ~ 1 + (1 | g)') or add a covariate; a model without any fixed-effect "
                           "column is not supported")
    X = np.asarray(common.design_matrix, dtype=float)
    fixed_names = tuple(_rename(c) for c in common.as_dataframe().columns)
    _require_finite(X, fixed_names, "the fixed-effect column", rows)
    if X.shape[1] and len(X) <= X.shape[1]:
        raise ValueError(f"too few rows: {len(X)} observation(s) for {X.shape[1]} fixed-effect column(s) "
                         f"{list(fixed_names)}; a GLMM needs more observations than fixed effects")
    if X.shape[1] and not full_rank(X):  # judged on centred, unit-length columns: not by their units
        raise ValueError(
            "the fixed-effects matrix is rank deficient: some of the columns "
            f"{list(fixed_names)} are linear combinations of the others; drop a term"
        )

    offset = np.zeros(len(data))
    for expr in spec.offsets:
        offset = offset + _eval(expr, data, "offset", rows)

    # random effects
    blocks, seen = [], set()
    for term in spec.random:
        levels, index = group_index(data, term.group)
        if len(levels) < 2:
            raise ValueError(f"grouping factor {term.group_label!r} has a single level "
                             f"({levels[0]!r}); a random effect needs at least two")
        mat = _common(term.expr, data, f"random term ({term.expr} | {term.group_label})")
        names = () if mat is None else tuple(_rename(c) for c in mat.as_dataframe().columns)
        if not names:  # (0 | g), (-1 | g): formulae has no matrix for it
            raise FormulaError(f"random term ({term.expr} | {term.group_label}) has no effects: write at least an "
                               f"intercept or a covariate before the bar, e.g. (1 | {term.group_label})")
        Xr = np.asarray(mat.design_matrix, dtype=float)
        _require_finite(Xr, names, f"in the random term of {term.group_label!r}, the column", rows)
        if term.group_label == "Residual" and "Residual" in names:  # see results.is_residual
            raise ValueError("the random term (... Residual | Residual) would have the labels of the residual SD: "
                             "rename the column 'Residual' used in it")
        for nm in names:
            key = (term.group_label, nm)
            if key in seen:
                raise FormulaError(f"the random effect {nm!r} of {term.group_label!r} "
                                   "appears twice in the formula")
            seen.add(key)
        blocks.append(RandomBlock(
            group=term.group_label, terms=names, levels=tuple(levels.tolist()),
            index=_readonly(index.astype(np.int64)), Xr=_readonly(Xr), correlated=term.correlated,
        ))

    return Design(
        formula=formula, response=response, y=_readonly(y), trials=_readonly(trials),
        offset=_readonly(offset), X=_readonly(X), fixed_names=fixed_names,
        random=tuple(blocks), n_dropped=n_dropped, data=data.copy(),
    )


def distinct_groups(design, with_groups: bool = False):
    """Groups whose data are identical (the same multiset of rows of y, trials, offset, X and the
    random term's column) contribute identical factors to the marginal likelihood: compute each
    pattern once (the marginal likelihood of NUTS with ``marginalize=True``, and AGQ). Longitudinal
    binary data repeat patterns a lot (ohio: 537 children, 32 patterns).

    Returns
    -------
    rows : ndarray of int
        The rows of one representative group per pattern.
    index : ndarray of int
        For those rows, their pattern (0 … P−1).
    counts : ndarray of float
        How many groups share each pattern.
    group_pattern : ndarray of int
        With ``with_groups=True``: each group's pattern.
    """
    block = design.random[0]
    n = np.ones_like(design.y) if design.trials is None else design.trials
    data = np.column_stack([design.y, n, design.offset, design.X, block.Xr])
    order = np.lexsort(data.T[::-1])  # rows sorted by their values, so each group's rows in a fixed order
    order = order[np.argsort(block.index[order], kind="stable")]  # then grouped
    sizes = np.bincount(block.index, minlength=block.n_levels)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    keys = {}
    pattern = np.empty(block.n_levels, dtype=int)
    for j in range(block.n_levels):
        key = data[order[starts[j]:starts[j] + sizes[j]]].tobytes()
        pattern[j] = keys.setdefault(key, len(keys))
    first = np.unique(pattern, return_index=True)[1]  # one representative group per pattern
    rep = np.zeros(block.n_levels, dtype=bool)
    rep[first] = True
    rows = np.flatnonzero(rep[block.index])
    out = rows, pattern[block.index[rows]], np.bincount(pattern, minlength=len(first)).astype(float)
    return (*out, pattern) if with_groups else out
