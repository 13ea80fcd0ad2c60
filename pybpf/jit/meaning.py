"""What a function of the subset means, computed in Python: the host check's
reference.

Python's own execution of a function differs from the compiled code exactly where
the subset says it does: values wrap at 64 bits, ``x // 0`` is 0 and ``x % 0`` is
``x``, shift counts are taken modulo 64. This interpreter of the checked AST has
those semantics and no others, so the compiled code must agree with it on every input;
where it and Python disagree, the function left 64 bits (or divided by zero) for
that input, which is a property of the function, not a miscompile.
"""
import ast

from .subset import BINOPS, CMPOPS, JitError

_MASK = (1 << 64) - 1


def wrap(v):
    v &= _MASK
    return v - (1 << 64) if v >> 63 else v


class Inexact(JitError):
    """For Interpreter(exact=True): the function leaves Python's meaning here (a value
    beyond 64 bits, a division by zero, a shift count outside 0..63)."""


def _binop(sym, a, b, exact=False):
    if exact:
        if (sym in ("//", "%") and b == 0) or (sym in ("<<", ">>") and not 0 <= b < 64):
            raise Inexact(f"{a} {sym} {b}")
        v = {"+": a + b, "-": a - b, "*": a * b, "&": a & b, "|": a | b, "^": a ^ b,
             "//": a // b if b else 0, "%": a % b if b else a, "<<": a << (b & 63),
             ">>": a >> (b & 63)}[sym]
        return _exact(v)
    if sym == "//":
        return 0 if b == 0 else wrap(a // b)
    if sym == "%":
        return a if b == 0 else wrap(a % b)
    if sym == "<<":
        return wrap(a << (b & 63))
    if sym == ">>":
        return wrap(a >> (b & 63))
    return wrap({"+": a + b, "-": a - b, "*": a * b, "&": a & b, "|": a | b,
                 "^": a ^ b}[sym])


def _exact(v):
    if wrap(v) != v:
        raise Inexact(f"{v} is beyond 64 bits")
    return v


_CMP = {"<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__,
        "==": int.__eq__, "!=": int.__ne__}


class IndexOutOfRange(JitError):
    """A step indexed a state array out of range (the compiled step returns 1)."""


# What executing a statement can end in, besides falling through (None).
BREAK, CONTINUE = "break", "continue"


class _Return:
    def __init__(self, value):
        self.value = value


class Interpreter:
    """Runs checked functions (subset.Function) of one compilation."""

    def __init__(self, root, exact=False):
        """exact: Python's meaning only, raising Inexact where the subset's and
        Python's part (the values stay 64-bit integers: the same result)."""
        from .subset import all_functions
        self.functions = {f.name: f for f in all_functions(root)}
        self.exact = exact
        self.wrap = _exact if exact else wrap

    def call(self, name, args, state=None):
        fn = self.functions[name]
        params = fn.params
        scope = {}
        if state is not None:
            params = params[1:]
        scope.update(zip(params, [self.wrap(a) for a in args]))
        end = self.block((fn, scope, state), fn.node.body)
        return end.value if isinstance(end, _Return) else 0

    def block(self, frame, statements):
        """Run statements; returns None, BREAK, CONTINUE or a _Return."""
        for stmt in statements:
            end = getattr(self, "s_" + type(stmt).__name__)(frame, stmt)
            if end is not None:
                return end
        return None

    def s_Expr(self, frame, node):
        return None

    def s_Pass(self, frame, node):
        return None

    def s_Return(self, frame, node):
        return _Return(self.value(frame, node.value) if node.value is not None else 0)

    def s_Assign(self, frame, node):
        self.store(frame, node.targets[0], self.value(frame, node.value))

    def s_AugAssign(self, frame, node):
        sym = BINOPS[type(node.op)]
        self.store(frame, node.target, _binop(sym, self.load(frame, node.target),
                                              self.value(frame, node.value), self.exact))

    def s_If(self, frame, node):
        return self.block(frame, node.body if self.value(frame, node.test) else node.orelse)

    def s_For(self, frame, node):
        fn, scope, _ = frame
        for i in range(*node.bounds):
            scope[node.target.id] = i
            end = self.block(frame, node.body)
            if end == BREAK:
                break
            if isinstance(end, _Return):
                return end
        return None

    def s_Break(self, frame, node):
        return BREAK

    def s_Continue(self, frame, node):
        return CONTINUE

    def _slot(self, frame, target):
        fn, _, state = frame
        index = None
        if isinstance(target, ast.Subscript):
            target, index = target.value, target.slice
        field = fn.state[target.attr]
        if index is None:
            return field.slot
        i = self.value(frame, index)
        if i < 0:
            i += field.length
        if not 0 <= i < field.length:
            raise IndexOutOfRange()
        return field.slot + i

    def load(self, frame, target):
        fn, scope, state = frame
        if isinstance(target, ast.Name):
            return self.name(frame, target)
        return state[self._slot(frame, target)]

    def store(self, frame, target, value):
        fn, scope, state = frame
        if isinstance(target, ast.Name):
            scope[target.id] = value
        else:
            state[self._slot(frame, target)] = value

    def name(self, frame, node):
        fn, scope, _ = frame
        if node.id in scope:
            return scope[node.id]
        return fn.constants[node.id]

    def value(self, frame, node):
        kind = type(node).__name__
        if kind == "Constant":
            return int(node.value)
        if kind == "Name":
            return self.name(frame, node)
        if kind in ("Attribute", "Subscript"):
            return self.load(frame, node)
        if kind == "BinOp":
            return _binop(BINOPS[type(node.op)], self.value(frame, node.left),
                          self.value(frame, node.right), self.exact)
        if kind == "UnaryOp":
            v = self.value(frame, node.operand)
            return {ast.USub: lambda: self.wrap(-v), ast.UAdd: lambda: v,
                    ast.Invert: lambda: self.wrap(~v),
                    ast.Not: lambda: int(v == 0)}[type(node.op)]()
        if kind == "Compare":
            left = self.value(frame, node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.value(frame, right_node)
                if not _CMP[CMPOPS[type(op)]](left, right):
                    return 0
                left = right
            return 1
        if kind == "BoolOp":
            is_and = isinstance(node.op, ast.And)
            v = 0
            for operand in node.values:
                v = self.value(frame, operand)
                if (v == 0) == is_and:
                    return v
            return v
        if kind == "IfExp":
            return self.value(frame, node.body if self.value(frame, node.test)
                              else node.orelse)
        if kind == "Call":
            args = [self.value(frame, a) for a in node.args]
            name = node.func.id
            if name == "abs":
                return self.wrap(abs(args[0]))
            if name == "min":
                return min(args)
            if name == "max":
                return max(args)
            return self.call(name, args)
        raise JitError(f"the interpreter has no meaning for {kind}")  # check() stops it first
