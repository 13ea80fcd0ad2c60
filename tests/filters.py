"""Hypothesis strategies for filter expressions and the numbers they test, shared by
the parser's unit tests and the kernel tests of the generated BPF code."""
from hypothesis import strategies as st

from pybpf.filterreduce.expr import INT64_MAX, INT64_MIN

constants = st.one_of(st.integers(-20, 20), st.integers(INT64_MIN, INT64_MAX),
                      st.sampled_from([0, 1, -1, INT64_MIN, INT64_MAX, 10 ** 30]))
divisors = st.one_of(st.integers(1, 12), st.integers(-12, -1),
                     st.integers(-INT64_MAX, INT64_MAX).filter(bool))


@st.composite
def terms(draw):
    base = draw(st.sampled_from(["x", "const"]))
    text = "x" if base == "x" else str(draw(constants))
    for _ in range(draw(st.integers(0, 2))):
        text = f"({text}) % ({draw(divisors)})"
    return text


@st.composite
def filters(draw, depth=0):
    kind = draw(st.sampled_from(["cmp", "chain", "truth"] + (["and", "or", "not"] if depth < 2 else [])))
    if kind == "cmp":
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        return f"{draw(terms())} {op} {draw(terms())}"
    if kind == "chain":
        return f"{draw(constants)} <= x < {draw(constants)}"
    if kind == "truth":
        return draw(terms())
    if kind == "not":
        return f"not ({draw(filters(depth + 1))})"
    joiner = f" {kind} "
    return joiner.join(f"({draw(filters(depth + 1))})" for _ in range(draw(st.integers(2, 3))))


values = st.one_of(st.integers(INT64_MIN, INT64_MAX), st.integers(-50, 50),
                   st.sampled_from([INT64_MIN, INT64_MAX, 0, -1, 1]))
