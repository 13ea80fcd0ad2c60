"""The Python subset the jit compiles, checked before any code is generated.

A function in the subset takes and returns signed 64-bit integers and uses:

- integer constants and module-level integer constants (read when compiling);
- local variables; ``x = e``, ``x += e`` (and the other augmented operators);
- ``+ - * // % & | ^ << >>``, unary ``- + ~ not``, comparisons (chained), ``and``,
  ``or``, ``a if c else b``; ``abs``, ``min`` and ``max`` of integers;
- ``if``/``elif``/``else``, ``for i in range(...)`` with constant bounds, ``break``,
  ``continue``, ``return``, ``pass``;
- calls to other functions of the subset (they are compiled too, and inlined);
- for reduce steps, the fields of the state: ``s.name`` and ``s.name[i]``.

The meaning is Python's wherever 64 bits hold the values; beyond that arithmetic
wraps as it does in C (two's complement), which the docs state. Floor division and
modulo are Python's (the sign of the divisor), and ``x // 0`` is 0 and ``x % 0`` is
``x``, as BPF defines them, where Python would raise. Shift counts are taken modulo
64, as BPF takes them. Anything else is refused with a :class:`JitError` naming the
line and the construct.
"""
import ast
import dataclasses
import inspect
import textwrap
from typing import Dict, List, Optional, Tuple

from ..errors import InputError

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_RANGE = 1 << 16            # iterations of one for loop (the verifier walks them)

BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%",
          ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
          ast.RShift: ">>"}
CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
          ast.NotEq: "!="}
BUILTINS = {"abs": 1, "min": 2, "max": 2}

_NAMES = {
    ast.While: "while loops (use for i in range(N))", ast.With: "with",
    ast.Try: "try", ast.Lambda: "lambda", ast.ListComp: "comprehensions",
    ast.GeneratorExp: "generators", ast.Dict: "dicts", ast.List: "lists",
    ast.Tuple: "tuples", ast.Set: "sets", ast.Subscript: "indexing",
    ast.Attribute: "attributes", ast.Global: "global", ast.Nonlocal: "nonlocal",
    ast.Delete: "del", ast.Raise: "raise", ast.Assert: "assert", ast.Import: "import",
    ast.ImportFrom: "import", ast.ClassDef: "classes", ast.FunctionDef: "nested functions",
    ast.Yield: "yield", ast.Await: "await", ast.JoinedStr: "f-strings",
    ast.Starred: "*args", ast.NamedExpr: ":=", ast.Div: "/ (use //)",
    ast.Pow: "** (BPF has no power; multiply)", ast.MatMult: "@",
}


class JitError(InputError):
    """A function the jit cannot compile: the message names the file, the line and
    the construct."""


@dataclasses.dataclass
class StateField:
    """A field of a reduce step's state: one 64-bit slot, or ``length`` of them."""
    name: str
    slot: int                  # first 64-bit slot
    length: Optional[int]      # None: a scalar; n: s.name[0..n)


@dataclasses.dataclass
class Function:
    """A checked function: its AST, where it came from, and what it refers to."""
    name: str
    node: ast.FunctionDef
    filename: str
    first_line: int
    constants: Dict[str, int]
    callees: List["Function"]
    state: Optional[Dict[str, StateField]] = None   # reduce steps: the first parameter

    @property
    def params(self):
        return [a.arg for a in self.node.args.args]


def _where(fn_name, filename, node):
    return f"{filename}:{getattr(node, 'lineno', '?')} (in {fn_name})"


class _Checker(ast.NodeVisitor):
    """Walks one function; refuses what the subset lacks, collects names."""

    def __init__(self, name, filename, line_offset, env, state_param, state):
        self.name, self.filename, self.offset = name, filename, line_offset
        self.env, self.state_param, self.state = env, state_param, state
        self.constants, self.calls, self.loop_depth = {}, {}, 0

    def fail(self, node, what):
        line = getattr(node, "lineno", 0) + self.offset
        raise JitError(f"{self.filename}:{line} (in {self.name}): {what} is not in the "
                       f"subset pybpf compiles to BPF (docs/jit.md)")

    def generic_visit(self, node):
        allowed = (ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Load,
                   ast.Store, ast.Return, ast.Assign, ast.AugAssign, ast.If, ast.For,
                   ast.Break, ast.Continue, ast.Pass, ast.Expr, ast.BinOp, ast.UnaryOp,
                   ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.Name, ast.Constant,
                   ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Invert, ast.keyword,
                   *BINOPS, *CMPOPS)
        if not isinstance(node, allowed):
            self.fail(node, _NAMES.get(type(node), type(node).__name__))
        super().generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            if isinstance(node.value, str):
                return  # a docstring; an expression statement of its own
            self.fail(node, f"a {type(node.value).__name__} constant (integers only)")
        if not INT64_MIN <= node.value <= INT64_MAX:
            self.fail(node, f"the constant {node.value} (beyond 64 bits)")

    def visit_Expr(self, node):
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            self.fail(node, "an expression statement (only a docstring)")

    def visit_Assign(self, node):
        if len(node.targets) != 1 or not isinstance(node.targets[0], (ast.Name,
                                                                     ast.Attribute,
                                                                     ast.Subscript)):
            self.fail(node, "assigning to several targets or unpacking")
        self._target(node.targets[0])
        self.visit(node.value)

    def visit_AugAssign(self, node):
        if type(node.op) not in BINOPS:
            self.fail(node, _NAMES.get(type(node.op), type(node.op).__name__))
        self._target(node.target)
        self.visit(node.value)

    def _target(self, target):
        if isinstance(target, ast.Name):
            if target.id == self.state_param:
                self.fail(target, f"assigning to the state {target.id!r} itself")
            return
        self._state_access(target)

    def _state_access(self, node):
        """``s.name`` or ``s.name[i]`` of a reduce step's state."""
        index = None
        if isinstance(node, ast.Subscript):
            node, index = node.value, node.slice
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == self.state_param and self.state is not None):
            self.fail(node, _NAMES[type(node)] + " (only the state's fields: s.name, "
                            "s.name[i])")
        field = self.state.get(node.attr)
        if field is None:
            self.fail(node, f"the state field {node.attr!r} (the state has "
                            f"{', '.join(self.state) or 'no fields'})")
        if (index is None) != (field.length is None):
            self.fail(node, f"s.{node.attr} {'with' if index is not None else 'without'} "
                            f"an index (it is {'a scalar' if field.length is None else 'an array'})")
        if index is not None:
            self.visit(index)

    def visit_Attribute(self, node):
        self._state_access(node)

    def visit_Subscript(self, node):
        self._state_access(node)

    def visit_For(self, node):
        if node.orelse:
            self.fail(node, "for ... else")
        if not isinstance(node.target, ast.Name):
            self.fail(node, "a for loop over anything but one name")
        it = node.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                and it.func.id == "range" and not it.keywords and 1 <= len(it.args) <= 3):
            self.fail(node, "a for loop over anything but range(...)")
        bounds = [self.constant(a) for a in it.args]
        if len(bounds) == 3 and bounds[2] == 0:
            self.fail(node, "range() with a step of 0")
        if len(range(*bounds)) > MAX_RANGE:
            self.fail(node, f"a loop of {len(range(*bounds))} iterations (at most "
                            f"{MAX_RANGE})")
        self.loop_depth += 1
        for stmt in node.body:
            self.visit(stmt)
        self.loop_depth -= 1

    def constant(self, node):
        """The value of a constant expression (a range() bound)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, int) \
                and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.constant(node.operand)
        if isinstance(node, ast.Name) and isinstance(self.env.get(node.id), int):
            self.constants[node.id] = self.env[node.id]
            return self.env[node.id]
        self.fail(node, "a range() bound that is not a constant")

    def visit_Break(self, node):
        if not self.loop_depth:
            self.fail(node, "break outside a loop")

    visit_Continue = visit_Break

    def visit_Call(self, node):
        if node.keywords or not isinstance(node.func, ast.Name):
            self.fail(node, "this call (functions of the subset, abs, min, max)")
        name = node.func.id
        if name in BUILTINS:
            if len(node.args) != BUILTINS[name]:
                self.fail(node, f"{name}() with {len(node.args)} arguments")
        else:
            target = self.env.get(name)
            if not inspect.isfunction(target):
                self.fail(node, f"calling {name!r} (not a Python function of this module)")
            self.calls[name] = target
        for a in node.args:
            self.visit(a)

    def visit_Name(self, node):
        value = self.env.get(node.id)
        if isinstance(node.ctx, ast.Load) and isinstance(value, int) \
                and not isinstance(value, bool):
            self.constants[node.id] = value


def _source(fn):
    try:
        lines, first = inspect.getsourcelines(fn)
        filename = inspect.getsourcefile(fn) or "<unknown>"
    except (OSError, TypeError) as e:
        raise JitError(f"cannot read the source of {getattr(fn, '__name__', fn)!r}: {e}; "
                       f"pass the source as a string") from None
    return textwrap.dedent("".join(lines)), filename, first - 1


def check(fn, state=None, source=None, env=None, _seen=None):
    """The checked Function for a Python function (or, with source, the function of
    that name in the source string); state: {name: None or length} for reduce steps,
    whose first parameter is the state."""
    if source is not None:
        text, filename, offset = textwrap.dedent(source), "<string>", 0
        name = fn
        env = dict(env or {})
    else:
        text, filename, offset = _source(fn)
        name = fn.__name__
        env = dict(fn.__globals__, **(env or {}))
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise JitError(f"{filename}:{(e.lineno or 0) + offset}: {e.msg}") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if not defs:
        raise JitError(f"no function {name!r} in the source")
    node = defs[0]
    if node.decorator_list and source is None:
        node.decorator_list = []       # decorators run in Python, not in the kernel
    args = node.args
    if args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.posonlyargs:
        raise JitError(f"{filename}:{node.lineno + offset} (in {name}): only plain "
                       f"positional parameters are in the subset")
    fields = None
    if state is not None:
        fields, slot = {}, 0
        for fname, length in state.items():
            fields[fname] = StateField(fname, slot, length)
            slot += length or 1
    state_param = args.args[0].arg if state is not None and args.args else None
    checker = _Checker(name, filename, offset, env, state_param, fields)
    for stmt in node.body:
        checker.visit(stmt)
    _seen = {} if _seen is None else _seen
    _seen[name] = None
    callees = []
    for callee_name, callee in checker.calls.items():
        if callee_name in _seen:
            if _seen[callee_name] is None:
                raise JitError(f"{filename}: {name} calls {callee_name} recursively "
                               f"(BPF has no recursion)")
            callees.append(_seen[callee_name])
            continue
        callees.append(check(callee, _seen=_seen))
    result = Function(name, node, filename, offset, checker.constants, callees, fields)
    _seen[name] = result
    return result


def all_functions(root):
    """root and every function it calls, each once, callees first."""
    out, seen = [], set()

    def walk(f):
        if f.name in seen:
            return
        seen.add(f.name)
        for c in f.callees:
            walk(c)
        out.append(f)
    walk(root)
    return out


def state_slots(fields):
    """The number of 64-bit slots a state of these fields takes."""
    return sum(f.length or 1 for f in fields.values()) if fields else 0


def parse_state(spec) -> Tuple[Dict[str, Optional[int]], Dict[str, int]]:
    """A reduce state from {name: initial int} and {name: [ints]} (arrays): the field
    shapes and the initial values by slot name."""
    if not isinstance(spec, dict) or not spec:
        raise JitError("a reduce state is a dict of field names to initial integers or "
                       "lists of integers, e.g. {'n': 0, 'hist': [0] * 16}")
    shapes, init = {}, {}
    for name, value in spec.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise JitError(f"state field {name!r} is not a Python name")
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool)
                                 and INT64_MIN <= v <= INT64_MAX for v in values):
            raise JitError(f"state field {name!r} must start as 64-bit integers, "
                           f"got {value!r}")
        shapes[name] = len(values) if isinstance(value, (list, tuple)) else None
        init[name] = list(values)
    return shapes, init
