import numpy as np
import pandas as pd
import pytest

import bayesglmm as bg
from bayesglmm.design import make_design
from bayesglmm.families import get_family
from bayesglmm.formula import FormulaError

BERN, POIS, GAUSS, BINOM = (get_family(f) for f in ("bernoulli", "poisson", "gaussian", "binomial"))


def test_fixed_matrix_matches_hand_built(small_df):
    d = make_design("y ~ x + c + (1 | g)", small_df, BERN)
    assert d.fixed_names == ("(Intercept)", "x", "c[b]", "c[c]", "c[d]")
    hand = np.column_stack([np.ones(40), small_df["x"],
                            *(small_df["c"].to_numpy() == lv for lv in "bcd")]).astype(float)
    np.testing.assert_array_equal(d.X, hand)
    np.testing.assert_array_equal(d.y, small_df["y"].to_numpy(float))
    np.testing.assert_array_equal(d.offset, 0.0)


def test_random_slope_block_and_Z_match_hand_built(small_df):
    d = make_design("y ~ x + (1 + x | g)", small_df, BERN)
    (block,) = d.random
    assert block.group == "g" and block.terms == ("(Intercept)", "x") and block.correlated
    assert block.levels == tuple(f"g{i}" for i in range(8))
    np.testing.assert_array_equal(block.index, np.repeat(np.arange(8), 5))
    Z = block.Z().toarray()
    hand = np.zeros((40, 16))
    for i in range(40):
        j = i // 5
        hand[i, 2 * j] = 1.0
        hand[i, 2 * j + 1] = small_df["x"].iloc[i]
    np.testing.assert_array_equal(Z, hand)
    assert block.label == "1+x|g" and block.has_correlation


def test_uncorrelated_nested_crossed(small_df):
    d = make_design("y ~ x + (1 + x || g)", small_df, BERN)
    assert [(b.terms, b.correlated) for b in d.random] == [(("(Intercept)",), False), (("x",), False)]
    d = make_design("y ~ 1 + (1 | g/h)", small_df, BERN)
    assert [b.group for b in d.random] == ["g", "g:h"]
    assert d.random[1].n_levels == 40 and d.random[1].levels[0] == "g0:h1"
    d = make_design("y ~ 1 + (1 | g) + (1 | h)", small_df, BERN)
    assert d.groups == ("g", "h") and d.Z().shape == (40, 13)


def test_binomial_trials_cbind_and_p(small_df):
    a = make_design("cbind(succ, size - succ) ~ x + (1|g)", small_df, BINOM)
    b = make_design("p(succ, size) ~ x + (1|g)", small_df, BINOM)
    np.testing.assert_array_equal(a.trials, 5.0)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.trials, b.trials)
    c = make_design("y ~ x + (1|g)", small_df, BINOM)  # 0/1 response: one trial each
    np.testing.assert_array_equal(c.trials, 1.0)


def test_offset_and_categorical_call(small_df):
    d = make_design("count ~ C(c) + offset(np.log(t)) + (1 | g)", small_df, POIS)
    np.testing.assert_allclose(d.offset, np.log(small_df["t"]))
    assert d.fixed_names[1] == "C(c)[b]"


def test_design_is_read_only(small_df):
    d = make_design("y ~ x + (1 | g)", small_df, BERN)
    with pytest.raises(ValueError):
        d.X[0, 0] = 3.0
    with pytest.raises(AttributeError):
        d.y = None


def test_dataframe_never_modified(small_df):
    before = small_df.copy(deep=True)
    df = small_df.copy()
    df.loc[3, "x"] = np.nan
    snapshot = df.copy(deep=True)
    make_design("y ~ x + c + (1 + x | g)", small_df, BERN)
    with pytest.warns(UserWarning, match="dropping 1 of 40 rows"):
        make_design("y ~ x + (1 | g)", df, BERN, missing="drop")
    pd.testing.assert_frame_equal(small_df, before)
    pd.testing.assert_frame_equal(df, snapshot)


# ---------------------------------------------------------------- bad input
def test_missing_column(small_df):
    with pytest.raises(KeyError, match="'nope' is not in the data"):
        make_design("y ~ nope + (1 | g)", small_df, BERN)
    with pytest.raises(KeyError, match="'grp' is not in the data"):
        make_design("y ~ x + (1 | grp)", small_df, BERN)
    with pytest.raises(KeyError, match="'yy' is not in the data"):
        make_design("yy ~ x + (1 | g)", small_df, BERN)


@pytest.mark.parametrize("col,value", [("x", np.nan), ("x", np.inf), ("y", np.nan), ("g", None)])
def test_missing_values_raise_naming_column(small_df, col, value):
    df = small_df.astype({"y": float}).copy()
    df.loc[2, col] = value
    with pytest.raises(ValueError, match=f"'{col}' \\(1 rows\\)"):
        make_design("y ~ x + (1 | g)", df, BERN)


def test_missing_drop_reports_count(small_df):
    df = small_df.copy()
    df.loc[[1, 2], "x"] = np.nan
    with pytest.warns(UserWarning, match="dropping 2 of 40 rows"):
        d = make_design("y ~ x + (1 | g)", df, BERN, missing="drop")
    assert d.nobs == 38 and d.n_dropped == 2


def test_response_outside_support(small_df):
    with pytest.raises(ValueError, match="bernoulli.*0/1"):
        make_design("count ~ x + (1 | g)", small_df.assign(count=small_df["count"] + 2), BERN)
    with pytest.raises(ValueError, match="non-negative integer"):
        make_design("x ~ 1 + (1 | g)", small_df, POIS)
    with pytest.raises(ValueError, match="exceed the trials"):
        make_design("p(count, size) ~ 1 + (1 | g)", small_df.assign(count=9), BINOM)
    with pytest.raises(ValueError, match="positive integers"):
        make_design("p(succ, size) ~ 1 + (1 | g)", small_df.assign(size=0, succ=0), BINOM)
    with pytest.raises(ValueError, match="family='binomial'"):
        make_design("p(succ, size) ~ 1 + (1 | g)", small_df, POIS)
    with pytest.raises(TypeError, match="'c' must be numeric"):
        make_design("c ~ 1 + (1 | g)", small_df, BERN)


def test_single_level_group(small_df):
    with pytest.raises(ValueError, match="'one' has a single level"):
        make_design("y ~ x + (1 | one)", small_df.assign(one="a"), BERN)


def test_unparseable_and_rank_deficient(small_df):
    with pytest.raises(FormulaError):
        make_design("y ~ x + + (1 | g)", small_df, BERN)
    with pytest.raises(ValueError, match="rank deficient"):
        make_design("y ~ x + x2 + (1 | g)", small_df.assign(x2=2 * small_df["x"]), BERN)
    with pytest.raises(FormulaError, match="appears twice"):
        make_design("y ~ x + (1 | g) + (1 | g)", small_df, BERN)
    # no fixed-effect column at all: a clear error (it was an AttributeError from formulae's None)
    with pytest.raises(FormulaError, match="has no fixed effects"):
        make_design("y ~ 0 + (1 | g)", small_df, BERN)


def test_bad_data_argument():
    with pytest.raises(TypeError, match="DataFrame"):
        make_design("y ~ x", {"y": [1]}, BERN)
    with pytest.raises(ValueError, match="missing must be"):
        make_design("y ~ x", pd.DataFrame({"y": [1], "x": [1]}), BERN, missing="ignore")


def test_bundled_data_designs():
    d = bg.GLMM("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                bg.datasets.load("cbpp"), family="binomial").design
    assert d.nobs == 56 and d.fixed_names == ("(Intercept)", "period[2]", "period[3]", "period[4]")
    assert d.random[0].n_levels == 15
    assert sorted(bg.datasets.list_datasets()) == ["bacteria", "cbpp", "epil", "gamma_sim", "milk", "nb_offset_sim",
                                                   "nb_slope_sim", "ohio", "salamander", "salamander_counts",
                                                   "sleepstudy"]
    with pytest.raises(KeyError, match="unknown data set"):
        bg.datasets.load("iris")


# ---------------------------------------------------------------- issue 23: names, dtypes, values
def test_offset_that_is_not_finite_names_the_expression_and_rows(small_df):
    """log(0) in an offset was a LinAlgError ('SVD did not converge') many frames deep."""
    df = small_df.copy()
    df.loc[[3, 7], "t"] = 0.0
    for missing in ("raise", "drop"):  # log(0) is not missing data: an error either way
        with pytest.raises(ValueError, match=r"offset 'np.log\(t\)' is NaN or infinite in 2 row\(s\) \(index 3, 7\)"):
            make_design("count ~ x + offset(np.log(t)) + (1 | g)", df, POIS, missing=missing)
    # the row labels are the user's, also after other rows were dropped
    df = df.set_index(np.arange(100, 140))
    df.loc[101, "x"] = np.nan
    with pytest.warns(UserWarning, match="dropping 1 of 40"), pytest.raises(ValueError, match=r"\(index 103, 107\)"):
        make_design("count ~ x + offset(np.log(t)) + (1 | g)", df, POIS, missing="drop")
    with pytest.raises(ValueError, match=r"fixed-effect column 'np.log\(t\)' is NaN or infinite in 2 row"):
        make_design("count ~ np.log(t) + (1 | g)", df, POIS)
    with pytest.raises(ValueError, match=r"response 'np.log\(t\)' is NaN or infinite"):
        make_design("np.log(t) ~ z + (1 | g)", df, GAUSS)


@pytest.mark.parametrize("name,term", [("my col", "`my col`"), ("größe", "größe"), ("z2", "np.log(z2)")])
def test_missing_values_in_every_referenced_column_are_seen(small_df, name, term):
    """Backticked, non-ASCII and in-call columns: their NaNs are reported or dropped (formulae's
    "'data' contains 1 incomplete rows" before)."""
    df = small_df.assign(**{name: small_df["t"]})
    df.loc[5, name] = np.nan
    with pytest.raises(ValueError, match=f"'{name}' \\(1 rows\\)"):
        make_design(f"y ~ {term} + (1 | g)", df, BERN)
    with pytest.warns(UserWarning, match="dropping 1 of 40"):
        d = make_design(f"y ~ {term} + (1 | g)", df, BERN, missing="drop")
    assert d.nobs == 39 and d.fixed_names[1] == (name if term != "np.log(z2)" else term)


def test_columns_with_spaces_or_any_alphabet(small_df):
    df = small_df.rename(columns={"g": "my group", "x": "my x", "h": "Höhe"})
    d = make_design("y ~ `my x` + (1 + `my x` | `my group`) + (1 | Höhe)", df, BERN)
    assert d.fixed_names == ("(Intercept)", "my x") and d.groups == ("my group", "Höhe")
    assert d.random[0].terms == ("(Intercept)", "my x") and d.random[0].n_levels == 8


def test_duplicate_columns(small_df):
    used = pd.concat([small_df, small_df[["x"]]], axis=1)
    with pytest.raises(ValueError, match="more than one column named 'x', which the formula uses"):
        make_design("y ~ x + (1 | g)", used, BERN)
    unused = pd.concat([small_df, small_df[["z"]]], axis=1)  # not in the formula: left out
    d = make_design("y ~ x + (1 | g)", unused, BERN)
    assert d.fixed_names == ("(Intercept)", "x") and "z" not in d.data.columns


def test_object_numbers_and_dates_name_the_column(small_df):
    with pytest.raises(TypeError, match=r"'x' holds numbers stored as dtype object: convert it with pd.to_numeric"):
        make_design("y ~ x + (1 | g)", small_df.astype({"x": object}), BERN)
    mixed = small_df.astype({"c": object})
    mixed.loc[0, "c"] = 3
    with pytest.raises(TypeError, match=r"'c' \(dtype object\) holds values of type number, string"):
        make_design("y ~ c + (1 | g)", mixed, BERN)
    with pytest.raises(TypeError, match=r"'b' holds True/False stored as dtype object: convert it with df\['b'\]"):
        make_design("y ~ b + (1 | g)", small_df.assign(b=(small_df["x"] > 0).astype(object)), BERN)
    dates = small_df.assign(d=pd.date_range("2020-01-01", periods=40))
    with pytest.raises(TypeError, match=r"'d' holds dates or times \(dtype datetime64.*\.dt\.days"):
        make_design("y ~ d + (1 | g)", dates, BERN)
    # a grouping column may hold dates: its levels are labels
    grouped = dates.assign(d=np.repeat(dates["d"][:8], 5).to_numpy())
    assert make_design("y ~ x + (1 | d)", grouped, BERN).random[0].n_levels == 8
    with pytest.raises(TypeError, match=r"response column 'y' must be numeric.*pd.to_numeric"):
        make_design("y ~ x + (1 | g)", small_df.astype({"y": object}), BERN)


def test_a_column_named_intercept_is_a_covariate(small_df):
    """formulae names its intercept 'Intercept': a column of that name replaced the intercept, and its
    coefficient was labelled '(Intercept)'."""
    df = small_df.rename(columns={"x": "Intercept"})
    d = make_design("y ~ Intercept + (1 + Intercept | g)", df, BERN)
    assert d.fixed_names == ("(Intercept)", "Intercept") and d.random[0].terms == ("(Intercept)", "Intercept")
    np.testing.assert_array_equal(d.X, make_design("y ~ x + (1 + x | g)", small_df, BERN).X)
    d = make_design("y ~ `Intercept` + I(Intercept ** 2) + (1 | g)", df, BERN)
    assert d.fixed_names == ("(Intercept)", "Intercept", "I(Intercept ** 2)")
    new = df.head(3)
    np.testing.assert_array_equal(d.evaluate_new(new).X, d.X[:3])
    with pytest.raises(ValueError, match=r"column '\(Intercept\)' has the label of the model's intercept.*rename"):
        make_design("y ~ `(Intercept)` + (1 | g)", small_df.rename(columns={"x": "(Intercept)"}), BERN)
    assert list(df.columns) == list(small_df.rename(columns={"x": "Intercept"}).columns)  # not modified


def test_interaction_levels_are_pairs_of_values_with_unambiguous_labels():
    """("1:2", "3") and ("1", "2:3") were both "1:2:3": one level instead of two."""
    df = pd.DataFrame({"a": ["1:2", "1", "x", "x"] * 5, "b": ["3", "2:3", "y", "z"] * 5,
                       "y": np.arange(20.0) % 3})
    (block,) = make_design("y ~ 1 + (1 | a:b)", df, GAUSS).random
    assert block.levels == ("1:`2:3`", "`1:2`:3", "x:y", "x:z")
    assert [block.levels[i] for i in block.index[:4]] == ["`1:2`:3", "1:`2:3`", "x:y", "x:z"]
    nested = make_design("y ~ 1 + (1 | a/b)", df, GAUSS).random
    assert [b.n_levels for b in nested] == [3, 4] and nested[1].levels == block.levels
    np.testing.assert_array_equal(make_design("y ~ 1 + (1 | a:b)", df, GAUSS).evaluate_new(df).index[0], block.index)
    # numbers in an interaction are ordered by value
    num = pd.DataFrame({"a": [10, 2, 10, 2] * 3, "b": [1.5, 1.5, -1.0, -1.0] * 3, "y": np.arange(12.0)})
    assert make_design("y ~ 1 + (1 | a:b)", num, GAUSS).random[0].levels == ("2:-1.0", "2:1.5", "10:-1.0", "10:1.5")


def test_missing_drop_that_leaves_no_rows(small_df):
    with pytest.warns(UserWarning, match="dropping 40 of 40"), pytest.raises(ValueError, match="no rows left: each of"):
        make_design("y ~ x + (1 | g)", small_df.assign(x=np.nan), BERN, missing="drop")


def test_scientific_notation_and_empty_random_terms():
    """formulae's parser does not read exponents: I(x * 1e9) gave "Expect ')' after arguments"; (0 | g)
    an AttributeError."""
    import bayesglmm as bg
    from bayesglmm.formula import FormulaError

    ss = bg.datasets.load("sleepstudy")
    m = bg.GLMM("Reaction ~ I(Days * 1e9) + offset(np.log(Days + 1.5e3)) + (1 | Subject)", ss)
    assert m.design.fixed_names == ("(Intercept)", "I(Days * 1000000000)")
    assert m.design.formula == "Reaction ~ I(Days * 1e9) + offset(np.log(Days + 1.5e3)) + (1 | Subject)"
    for bad in ("(0 | Subject)", "(-1 | Subject)"):
        with pytest.raises(FormulaError, match="has no effects"):
            bg.GLMM(f"Reaction ~ Days + {bad}", ss)


def test_an_lmm_with_as_many_effects_as_rows_is_refused():
    """A Gaussian (1 | g) with every group of size 1 split σ² arbitrarily (sd = σ) with no flag; lmer refuses."""
    import bayesglmm as bg
    from bayesglmm.results import NotApplicableError

    df = pd.DataFrame({"y": np.random.default_rng(0).normal(size=30), "x": np.arange(30.0), "g": np.arange(30)})
    with pytest.raises(NotApplicableError, match="30 effects for 30 observations"):
        bg.GLMM("y ~ x + (1 | g)", df).fit("reml")
