"""Filter expressions: what the parser accepts, what it refuses and why, and that
the folded tree means what the Python source means."""
import pytest
from hypothesis import given, settings

from filters import filters, values
from pybpf.filterreduce import expr
from pybpf.filterreduce.expr import INT64_MAX, INT64_MIN, Bool, Compare, FilterError


@pytest.mark.parametrize("source", [
    "x >= 100", "x % 3 == 0 and x < 0", "not (10 <= x <= 20)", "10 <= x < 20",
    "x != 5 or x == 7", "x % 2", "not x % 2", "(x % 7) % 3 == 1", "-5 < x",
    "x % -4 == -1", "x > 2 ** 40", "x == x", "x % (3 * 4) == 1 << 2",
    "x % 3 < x % 5", "True", "x < 10 ** 30",
])
def test_accepted(source):
    flt = expr.parse(source)
    assert flt.source == source
    assert str(flt.tree)


@pytest.mark.parametrize("source, words", [
    ("y > 3", "unknown name 'y'"),
    ("x + 1 > 3", "operator 'add' on x"),
    ("x * 2 == 4", "operator 'mult' on x"),
    ("x @ 2 == 4", "operator 'matmult'"),
    ("x > 2 ** 1000", "out of the range"),
    ("x > 3 // 0", "division by zero"),
    ("abs(x) > 3", "function calls"),
    ("x in (1, 2)", "'in'"),
    ("x > 1.5", "float constants"),
    ("x % y == 0", "unknown name 'y'"),
    ("x % 0 == 1", "modulo by zero"),
    ("x % (x % 3) == 0", "a modulus that is not a constant"),
    ("-x > 3", "negating x"),
    ("x >", "not a Python expression"),
    ("", "empty"),
    ("x if x else 1", "conditional expressions"),
    ("x > 'a'", "str constants"),
    ("x % (1 << 63) == 0", "does not fit"),
    ("x % 9223372036854775808 == 0", "does not fit"),
    ("x is 3", "'is'"),
])
def test_refused_with_the_unsupported_part_named(source, words):
    with pytest.raises(FilterError) as info:
        expr.parse(source)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_refusal_names_the_column():
    with pytest.raises(FilterError, match=r"column 11: 'abs\(x\)'"):
        expr.parse("x > 3 and abs(x) < 5")


def test_a_filter_must_be_a_string():
    with pytest.raises(FilterError, match="a string"):
        expr.parse(5)


@pytest.mark.parametrize("source, value", [
    ("x < 10 ** 30", True), ("x > -(10 ** 30)", True), ("x == 10 ** 30", False),
    ("x % 3 < 3", True), ("x % 3 >= 3", False), ("x % -3 > 0", False),
    ("x % 3 == 5", False), ("3 < 4", True), ("5 % 3 == 2", True),
    ("x > 5 or 1 < 2", True), ("x > 5 and 2 < 1", False), ("not 1 < 2", False),
    (f"x <= {INT64_MAX}", True), (f"x >= {INT64_MIN}", True),
])
def test_decided_comparisons_fold(source, value):
    assert expr.parse(source).tree == Bool(value)


def test_folding_keeps_what_depends_on_x():
    tree = expr.parse("x > 5 and 1 < 2").tree
    assert isinstance(tree, Compare) and str(tree) == "x > 5"


# ---- the tree and the source agree -----------------------------------------------------

def evaluate(node, x):
    """The folded tree's meaning, computed independently of Python's eval."""
    if isinstance(node, expr.Bool):
        return node.value
    if isinstance(node, expr.Not):
        return not evaluate(node.part, x)
    if isinstance(node, expr.And):
        return all(evaluate(p, x) for p in node.parts)
    if isinstance(node, expr.Or):
        return any(evaluate(p, x) for p in node.parts)
    ops = {"<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__,
           "==": int.__eq__, "!=": int.__ne__}
    return ops[node.op](term(node.left, x), term(node.right, x))


def term(t, x):
    if isinstance(t, expr.Var):
        return x
    if isinstance(t, expr.Const):
        return t.value
    return term(t.term, x) % t.divisor


@settings(max_examples=400, deadline=None)
@given(filters(), values)
def test_folded_tree_means_what_python_means(source, x):
    try:
        flt = expr.parse(source)
    except FilterError:
        return  # e.g. a constant term alone, or a modulus out of range: refused cleanly
    assert evaluate(flt.tree, x) == expr.predicate(flt)(x) == bool(eval(source, {"x": x}))


def test_predicate_of_no_filter_keeps_everything():
    keep = expr.predicate(None)
    assert keep(INT64_MIN) and keep(0) and keep(INT64_MAX)
