"""The Python subset the jit compiles, checked before any code is generated.

A function in the subset takes and returns signed 64-bit integers and uses:

- integer constants and module-level integer constants (read when compiling);
- local variables; ``x = e``, ``x += e`` (and the other augmented operators);
- ``+ - * // % & | ^ << >>``, unary ``- + ~ not``, comparisons (chained), ``and``,
  ``or``, ``a if c else b``; ``abs``, ``min`` and ``max`` of integers;
- ``if``/``elif``/``else``, ``for i in range(...)`` with constant bounds, ``break``,
  ``continue``, ``return``, ``pass``;
- calls to other functions of the subset (they are compiled too, and inlined);
- for reduce steps, the fields of the state: ``s.name`` and ``s.name[i]``;
- for programs (:func:`pybpf.jit.program`), and only there: the maps of the module
  (``m[k]``, ``m[k] = v``, ``m[k] += v``, ``k in m``, ``del m[k]``), the helpers of
  :mod:`pybpf.jit.helpers` (``jit.tgid()``), and the context as 64-bit words
  (``ctx[i]``, i a constant).

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
MAX_CTX_WORD = 511             # ctx[i]: within the 4 KiB the largest contexts have

BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%",
          ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
          ast.RShift: ">>"}
CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
          ast.NotEq: "!="}
BUILTINS = {"abs": 1, "min": 2, "max": 2}

_CONSTANT_OPS = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__,
                 "//": int.__floordiv__, "%": int.__mod__, "&": int.__and__,
                 "|": int.__or__, "^": int.__xor__, "<<": int.__lshift__,
                 ">>": int.__rshift__}

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
    maps: Dict[str, object] = dataclasses.field(default_factory=dict)  # name -> jit.Map
    helpers: Dict[str, object] = dataclasses.field(default_factory=dict)  # "jit.tgid" -> Helper
    ctx: Optional[str] = None  # programs: the context parameter
    kernel: bool = False       # it, or a callee, uses maps, helpers or the context

    @property
    def params(self):
        return [a.arg for a in self.node.args.args]


def _where(fn_name, filename, node):
    return f"{filename}:{getattr(node, 'lineno', '?')} (in {fn_name})"


class _Checker(ast.NodeVisitor):
    """Walks one function; refuses what the subset lacks, collects names."""

    def __init__(self, name, filename, line_offset, env, state_param, state,
                 program=False, ctx_param=None):
        self.name, self.filename, self.offset = name, filename, line_offset
        self.env, self.state_param, self.state = env, state_param, state
        self.program, self.ctx_param = program, ctx_param
        self.constants, self.calls, self.loop_depth = {}, {}, 0
        self.maps, self.helpers, self.uses_ctx = {}, {}, False
        self.where = None

    def visit(self, node):
        if hasattr(node, "lineno"):
            self.where = node          # operators and contexts have no line of their own
        return super().visit(node)

    def fail(self, node, what):
        line = getattr(node, "lineno", None) or getattr(self.where, "lineno", 0)
        line += self.offset
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
        if not isinstance(node.value, int):        # True and False are 1 and 0
            self.fail(node, f"a {type(node.value).__name__} constant (integers only)")
        if not INT64_MIN <= node.value <= INT64_MAX:
            self.fail(node, f"the constant {node.value} (beyond 64 bits)")

    def visit_Expr(self, node):
        value = node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return                     # a docstring
        self.fail(node, _NAMES.get(type(value), "an expression statement (only a "
                                                "docstring; a call's result must be used)"))

    def visit_FunctionDef(self, node):
        self.fail(node, "nested functions")

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
            if target.id in (self.state_param, self.ctx_param) \
                    or self.map_of(target) is not None:
                self.fail(target, f"assigning to {target.id!r} itself")
            return
        if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) \
                and target.value.id == self.ctx_param:
            self.fail(target, "writing to the context")
        self.visit_Subscript(target) if isinstance(target, ast.Subscript) \
            else self._state_access(target)

    # -- what only programs have: maps, helpers, the context ------------------------

    def kernel_only(self, node, what):
        if not self.program:
            self.fail(node, f"{what} (maps, helpers and the context are for programs, "
                            f"jit.program(); a filter or reduce step is a pure function)")

    def map_of(self, node):
        """The jit.Map a Name refers to, or None."""
        if isinstance(node, ast.Name) and node.id != self.ctx_param:
            value = self.env.get(node.id)
            if getattr(value, "__bpf_map__", False):
                return value
        return None

    def resolve(self, node):
        """What a dotted name (``tgid``, ``jit.tgid``) is bound to, through modules
        only (no attribute of any other object is read)."""
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if inspect.ismodule(base):
                return getattr(base, node.attr, None)
        return None

    def use_map(self, node):
        m = self.map_of(node)
        self.kernel_only(node, f"the map {node.id!r}")
        self.maps[node.id] = m
        return m

    def visit_Delete(self, node):
        for t in node.targets:
            if not (isinstance(t, ast.Subscript) and self.map_of(t.value) is not None):
                self.fail(node, "del of anything but a map's key (del m[k])")
            self.use_map(t.value)
            self.visit(t.slice)

    def visit_Compare(self, node):
        membership = [isinstance(op, (ast.In, ast.NotIn)) for op in node.ops]
        if any(membership):
            if len(node.ops) != 1 or self.map_of(node.comparators[0]) is None:
                self.fail(node, "in/not in with anything but one map (k in m)")
            self.use_map(node.comparators[0])
            self.visit(node.left)
            return
        self.generic_visit(node)

    def _state_access(self, node):
        """``s.name`` or ``s.name[i]`` of a reduce step's state."""
        index = None
        if isinstance(node, ast.Subscript):
            node, index = node.value, node.slice
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == self.state_param and self.state is not None):
            what = "indexing" if index is not None else "attributes"
            self.fail(node, what + " (only a reduce state's fields, s.name and s.name[i], "
                                   "and in programs maps and the context)")
        field = self.state.get(node.attr)
        if field is None:
            self.fail(node, f"the state field {node.attr!r} (the state has "
                            f"{', '.join(self.state) or 'no fields'})")
        if (index is None) != (field.length is None):
            kind = "a scalar" if field.length is None else "an array"
            self.fail(node, f"s.{node.attr} {'with' if index is not None else 'without'} "
                            f"an index (it is {kind})")
        if index is not None:
            self.visit(index)

    def visit_Attribute(self, node):
        self._state_access(node)

    def visit_Subscript(self, node):
        base = node.value
        if isinstance(base, ast.Name) and base.id == self.ctx_param:
            self.kernel_only(node, "the context")
            self.uses_ctx = True
            i = node.slice
            if not (isinstance(i, ast.Constant) and isinstance(i.value, int)
                    and not isinstance(i.value, bool) and 0 <= i.value <= MAX_CTX_WORD):
                self.fail(node, f"ctx[...] with anything but a constant 0..{MAX_CTX_WORD} "
                                f"(the verifier needs a fixed offset into the context)")
            return
        if self.map_of(base) is not None:
            self.use_map(base)
            self.visit(node.slice)
            return
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
        node.bounds = tuple(bounds)    # for the code generator and the interpreter
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
        """The value of a constant expression (a range() bound): integers, module
        constants, and + - * // % << >> & | ^ and unary - ~ of them."""
        if isinstance(node, ast.Constant) and isinstance(node.value, int) \
                and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Invert)):
            v = self.constant(node.operand)
            return -v if isinstance(node.op, ast.USub) else ~v
        if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
            a, b = self.constant(node.left), self.constant(node.right)
            try:
                return _CONSTANT_OPS[BINOPS[type(node.op)]](a, b)
            except (ZeroDivisionError, ValueError):
                self.fail(node, "a range() bound that divides by zero or shifts by a "
                                "negative count")
        if isinstance(node, ast.Name) and isinstance(self.env.get(node.id), int) \
                and not isinstance(self.env.get(node.id), bool):
            self.constants[node.id] = self.env[node.id]
            return self.env[node.id]
        self.fail(node, "a range() bound that is not a constant")

    def visit_Break(self, node):
        if not self.loop_depth:
            self.fail(node, "break outside a loop")

    visit_Continue = visit_Break

    def visit_Call(self, node):
        helper = getattr(self.resolve(node.func), "__bpf_helper__", None)
        if helper is not None:
            self.kernel_only(node, f"the helper {helper.name}()")
            if node.args or node.keywords:
                self.fail(node, f"{helper.name}() with arguments (it takes none)")
            self.helpers[ast.unparse(node.func)] = helper
            return
        if node.keywords or not isinstance(node.func, ast.Name):
            self.fail(node, "this call (functions of the subset, abs, min, max, and in "
                            "programs the helpers of pybpf.jit.helpers)")
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
        if node.id == self.ctx_param:
            self.fail(node, f"the context {node.id!r} other than as {node.id}[i]")
        if self.map_of(node) is not None:
            self.fail(node, f"the map {node.id!r} other than as {node.id}[k], k in "
                            f"{node.id} or del {node.id}[k]")
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


def check(fn, state=None, source=None, env=None, program=False, _seen=None, _root=True):
    """The checked Function for a Python function (or, with source, the function of
    that name in the source string); state: {name: None or length} for reduce steps,
    whose first parameter is the state; program: a program's function, whose one
    parameter (if any) is the context, and which (with its callees) may use maps and
    helpers."""
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
    ctx_param = None
    if program and _root:
        if len(args.args) > 1:
            raise JitError(f"{filename}:{node.lineno + offset} (in {name}): a program "
                           f"takes one parameter, the context (or none)")
        ctx_param = args.args[0].arg if args.args else None
    checker = _Checker(name, filename, offset, env, state_param, fields, program, ctx_param)
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
        if source is not None:         # a function of the same source string
            callees.append(check(callee_name, source=source, env=env, program=program,
                                 _seen=_seen, _root=False))
        else:
            callees.append(check(callee, program=program, _seen=_seen, _root=False))
    kernel = bool(checker.maps or checker.helpers or checker.uses_ctx) \
        or any(c.kernel for c in callees)
    result = Function(name, node, filename, offset, checker.constants, callees, fields,
                      checker.maps, checker.helpers, ctx_param, kernel)
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
