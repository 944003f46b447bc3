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
