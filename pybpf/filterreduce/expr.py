"""Filter expressions: Python syntax over one number ``x``, parsed into a small tree.

``parse("10 <= x < 20 and x % 3 == 0")`` accepts a whitelisted subset of Python
expressions and returns a tree that two back ends share: :mod:`.codegen` turns it
into BPF instructions, and :func:`predicate` into a Python function with the very
same meaning, which is the reference the pipeline's results are checked against.
Since the syntax is Python's, so is every meaning: ``%`` is Python's (the result
takes the sign of the divisor: ``-7 % 3 == 2``), comparisons chain, and a bare term is
true when it is not zero (``x % 2`` keeps odd numbers).

The grammar::

    expr    := expr "or" expr | expr "and" expr | "not" expr | "(" expr ")"
             | term (CMP term)+ | term
    term    := "x" | INT | "-" INT | term "%" INT | "(" term ")"
    CMP     := "<" | "<=" | ">" | ">=" | "==" | "!="

Anything else is refused with a :class:`FilterError` that names the unsupported part
and where it is. Values are signed 64-bit, so constants beyond that range are folded
away where the answer is known (``x < 10**30`` is always true) and refused where
they would change arithmetic (a modulus must fit in 63 bits).
"""
import ast
import dataclasses
from typing import Tuple, Union

from ..errors import PipelineError

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
        ast.NotEq: "!="}
_HOW = {
    ast.Call: "function calls", ast.Attribute: "attributes", ast.Subscript: "indexing",
    ast.IfExp: "conditional expressions", ast.Lambda: "lambdas",
    ast.BinOp: "this arithmetic", ast.UnaryOp: "this unary operator",
    ast.In: "'in'", ast.NotIn: "'not in'", ast.Is: "'is'", ast.IsNot: "'is not'",
}


class FilterError(PipelineError):
    """A filter expression pybpf cannot run in the kernel."""


# ---- the tree ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Var:
    """The number, x."""

    def __str__(self):
        return "x"


@dataclasses.dataclass(frozen=True)
class Const:
    value: int

    def __str__(self):
        return str(self.value)


@dataclasses.dataclass(frozen=True)
class Mod:
    """term % divisor (Python's: the result has the divisor's sign)."""
    term: "Term"
    divisor: int

    def __str__(self):
        return f"{_paren(self.term)} % {self.divisor}"


Term = Union[Var, Const, Mod]


@dataclasses.dataclass(frozen=True)
class Compare:
    """left op right: one link of a (possibly chained) comparison."""
    op: str
    left: Term
    right: Term

    def __str__(self):
        return f"{self.left} {self.op} {self.right}"


@dataclasses.dataclass(frozen=True)
class And:
    parts: Tuple["Node", ...]

    def __str__(self):
        return " and ".join(_paren_bool(p, And) for p in self.parts)


@dataclasses.dataclass(frozen=True)
class Or:
    parts: Tuple["Node", ...]

    def __str__(self):
        return " or ".join(_paren_bool(p, Or) for p in self.parts)


@dataclasses.dataclass(frozen=True)
class Not:
    part: "Node"

    def __str__(self):
        return f"not {_paren_bool(self.part, Not)}"


@dataclasses.dataclass(frozen=True)
class Bool:
    """A filter whose answer does not depend on x (after folding)."""
    value: bool

    def __str__(self):
        return "True" if self.value else "False"


Node = Union[Compare, And, Or, Not, Bool]


def _paren(term):
    return str(term) if not isinstance(term, Mod) else f"({term})"


def _paren_bool(node, within):
    text = str(node)
    return f"({text})" if isinstance(node, (And, Or)) and not isinstance(node, within) else text


@dataclasses.dataclass(frozen=True)
class Filter:
    """A parsed filter: the source text and its folded tree."""
    source: str
    tree: Node

    def __str__(self):
        return self.source


# ---- parsing -------------------------------------------------------------------------

def parse(source):
    """The Filter for a Python expression over x; FilterError if it is not one."""
    if not isinstance(source, str):
        raise FilterError(f"a filter is a string holding a Python expression over x, "
                          f"got {type(source).__name__}")
    text = source.strip()
    if not text:
        raise FilterError("the filter is empty; give an expression over x such as "
                          "'x >= 100', or no filter to keep every number")
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as e:
        raise FilterError(f"filter {text!r} is not a Python expression: {e.msg} "
                          f"(column {e.offset})") from None
    return Filter(text, _fold(_boolean(tree, text)))


def _where(node, text):
    col = getattr(node, "col_offset", None)
    if col is None:
        return ""
    end = getattr(node, "end_col_offset", None) or col + 1
    return f" at column {col + 1}: {text[col:end]!r}"


def _refuse(node, text, what=None):
    what = what or _HOW.get(type(node), type(node).__name__)
    raise FilterError(f"filters do not support {what}{_where(node, text)}; a filter uses "
                      f"x, integer constants, %, comparisons, and, or, not")


def _boolean(node, text):
    """A node in a place that wants true or false."""
    if isinstance(node, ast.BoolOp):
        parts = tuple(_boolean(v, text) for v in node.values)
        return And(parts) if isinstance(node.op, ast.And) else Or(parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return Not(_boolean(node.operand, text))
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _CMP:
                _refuse(node, text, _HOW.get(type(op)))
        terms = [_term(node.left, text)] + [_term(c, text) for c in node.comparators]
        links = [Compare(_CMP[type(op)], left, right)
                 for op, left, right in zip(node.ops, terms, terms[1:])]
        return links[0] if len(links) == 1 else And(tuple(links))
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return Bool(node.value)
    # A bare term, as Python reads it in a condition: true when it is not zero.
    return Compare("!=", _term(node, text), Const(0))


def _term(node, text):
    if isinstance(node, ast.Name):
        if node.id != "x":
            raise FilterError(f"unknown name {node.id!r}{_where(node, text)}: the number "
                              f"is called x")
        return Var()
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            _refuse(node, text, f"{type(node.value).__name__} constants "
                                f"(numbers are integers)")
        return Const(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _term(node.operand, text)
        if not isinstance(inner, Const):
            _refuse(node, text, "negating x (write the comparison the other way round)")
        return Const(-inner.value if isinstance(node.op, ast.USub) else inner.value)
    if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.Mod):
        left, right = _term(node.left, text), _term(node.right, text)
        if isinstance(left, Const) and isinstance(right, Const):
            return Const(_constant_arithmetic(node, left.value, right.value, text))
        op = type(node.op).__name__.lower()
        _refuse(node, text, f"the operator {op!r} on x (only % with a constant; "
                            f"arithmetic between constants is fine)")
    if isinstance(node, ast.BinOp):
        term, divisor = _term(node.left, text), _term(node.right, text)
        if not isinstance(divisor, Const):
            _refuse(node.right, text, "a modulus that is not a constant")
        if divisor.value == 0:
            raise FilterError(f"modulo by zero{_where(node, text)}")
        if isinstance(term, Const):
            return Const(term.value % divisor.value)
        if not -INT64_MAX <= divisor.value <= INT64_MAX:
            raise FilterError(f"modulus {divisor.value}{_where(node.right, text)} does "
                              f"not fit in a signed 64-bit value")
        return Mod(term, divisor.value)
    _refuse(node, text)


_ARITHMETIC = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__,
               ast.FloorDiv: int.__floordiv__, ast.Pow: int.__pow__,
               ast.LShift: int.__lshift__, ast.RShift: int.__rshift__,
               ast.BitAnd: int.__and__, ast.BitOr: int.__or__, ast.BitXor: int.__xor__}


def _constant_arithmetic(node, a, b, text):
    """a op b for two constants, as Python computes it (bounded, so a filter cannot
    ask for a number with millions of digits)."""
    op = type(node.op)
    if op not in _ARITHMETIC:
        _refuse(node, text, f"the operator {op.__name__.lower()!r}")
    if (op is ast.Pow and not 0 <= b <= 256) or (op in (ast.LShift, ast.RShift)
                                                 and not 0 <= b <= 1024):
        raise FilterError(f"constant {a} {'**' if op is ast.Pow else '<<'} {b}"
                          f"{_where(node, text)} is out of the range filters compute")
    if op is ast.FloorDiv and b == 0:
        raise FilterError(f"division by zero{_where(node, text)}")
    return _ARITHMETIC[op](a, b)


# ---- folding -------------------------------------------------------------------------

def term_range(term):
    """(lowest, highest) value the term can take for a signed 64-bit x."""
    if isinstance(term, Const):
        return term.value, term.value
    if isinstance(term, Var):
        return INT64_MIN, INT64_MAX
    d = term.divisor
    return (0, d - 1) if d > 0 else (d + 1, 0)


def _decide(op, left, right):
    """True/False when the comparison's answer is the same for every x, else None."""
    (llo, lhi), (rlo, rhi) = term_range(left), term_range(right)
    always = {"<": lhi < rlo, "<=": lhi <= rlo, ">": llo > rhi, ">=": llo >= rhi,
              "==": llo == lhi == rlo == rhi, "!=": lhi < rlo or llo > rhi}[op]
    never = {"<": llo >= rhi, "<=": llo > rhi, ">": lhi <= rlo, ">=": lhi < rlo,
             "==": lhi < rlo or llo > rhi, "!=": llo == lhi == rlo == rhi}[op]
    return True if always else False if never else None


def _fold(node):
    if isinstance(node, Compare):
        decided = _decide(node.op, node.left, node.right)
        return node if decided is None else Bool(decided)
    if isinstance(node, Not):
        part = _fold(node.part)
        return Bool(not part.value) if isinstance(part, Bool) else Not(part)
    if isinstance(node, (And, Or)):
        short = isinstance(node, Or)  # the value that decides the whole
        parts = []
        for p in map(_fold, node.parts):
            if isinstance(p, Bool):
                if p.value == short:
                    return Bool(short)
                continue
            parts.append(p)
        if not parts:
            return Bool(not short)
        return parts[0] if len(parts) == 1 else type(node)(tuple(parts))
    return node


# ---- the Python meaning --------------------------------------------------------------

def predicate(flt):
    """A Python function x -> bool with the filter's meaning (None: keep all).

    It is compiled from the source text the parser accepted, so its meaning is
    Python's by construction; the BPF code generated from the tree must agree."""
    if flt is None:
        return lambda x: True
    code = compile(f"lambda x: bool({flt.source})", "<filter>", "eval")
    return eval(code, {"__builtins__": {"bool": bool}})  # noqa: S307 - whitelisted above
