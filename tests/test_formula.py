import pytest

from bayesglmm.formula import FormulaError, RandomTerm, parse_formula


def test_plain_and_random_terms():
    s = parse_formula("y ~ x + (1 + x | g)")
    assert s.response == ("name", "y")
    assert s.fixed == "x"
    assert s.random == (RandomTerm("1 + x", ("g",), True),)
    assert s.offsets == ()


def test_double_bar_expands_to_uncorrelated_terms():
    s = parse_formula("y ~ x + (1 + x || g)")
    assert s.random == (RandomTerm("1", ("g",), False), RandomTerm("0 + x", ("g",), False))


def test_nested_and_crossed_groups():
    s = parse_formula("y ~ 1 + (1 | farm/group) + (1 | a:b)")
    assert [t.group for t in s.random] == [("farm",), ("farm", "group"), ("a", "b")]
    assert s.random[1].group_label == "farm:group"


def test_binomial_responses_and_offset():
    assert parse_formula("cbind(s, n - s) ~ x").response == ("cbind", "s", "n - s")
    assert parse_formula("p(s, n) ~ x").response == ("p", "s", "n")
    s = parse_formula("y ~ x + offset(np.log(t)) + (1|g)")
    assert s.offsets == ("np.log(t)",) and s.fixed == "x"


def test_fixed_part_defaults_to_intercept():
    assert parse_formula("y ~ (1 | g)").fixed == "1"


@pytest.mark.parametrize("bad", ["y x", "~ x", "y ~", "y ~ x + (1 | g", "y ~ x +", "y ~ 1 | g",
                                 "y ~ (1 | )", "cbind(a) ~ x"])
def test_bad_formulas_raise(bad):
    with pytest.raises(FormulaError):
        parse_formula(bad)


def test_non_string_formula():
    with pytest.raises(FormulaError, match="string"):
        parse_formula(3)


def test_group_names_in_backticks_and_any_alphabet():
    """Issue 23: a grouping column whose name has a space (in backticks) or non-ASCII letters."""
    s = parse_formula("y ~ `my x` + (1 | `my group`) + (1 | größe/`the plot`)")
    assert s.fixed == "`my x`"
    assert [t.group for t in s.random] == [("my group",), ("größe",), ("größe", "the plot")]
    assert s.random[2].group_label == "größe:the plot"
    # a name holding ':' stays one column, and its label says so
    t = parse_formula("y ~ (1 | `a:b`:c)").random[0]
    assert t.group == ("a:b", "c") and t.group_label == "`a:b`:c"
    with pytest.raises(FormulaError, match="goes in backticks, e.g. '`my group`'"):
        parse_formula("y ~ (1 | my group)")
    with pytest.raises(FormulaError, match="unbalanced '`'"):
        parse_formula("y ~ (1 | `my group)")


def test_redundant_brackets_around_a_random_term():
    assert parse_formula("y ~ x + ((1 | g))").random == (RandomTerm("1", ("g",), True),)
    assert parse_formula("y ~ (((1 + x || g)))").random == parse_formula("y ~ (1 + x || g)").random
    assert parse_formula("y ~ ((1 | g) + (0 + x | h)) + z").random == parse_formula("y ~ (1 | g) + (0 + x | h)").random
    assert parse_formula("y ~ (x) + (1 | g)").fixed == "(x)"  # a bracketed fixed term is formulae's
    assert parse_formula("y ~ (x + z) + (1 | g)").fixed == "(x + z)"
    with pytest.raises(FormulaError, match="must be in brackets"):
        parse_formula("y ~ (1) | g")
