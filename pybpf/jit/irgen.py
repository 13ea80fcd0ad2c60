"""Checked functions (subset.py) as LLVM IR, built with llvmlite's IR builder.

Every value is an ``i64``. Locals live in ``alloca`` slots that the optimiser turns
into registers; each statement carries a debug location (the Python file and line),
from which LLVM's BPF back end writes the line info the verifier quotes. Functions
that others call are ``internal`` and ``alwaysinline``: BPF objects then hold one
self-contained function per entry point, with no calls and no relocations.

Two kinds of function come out:

- *value* functions ``f(a, b, ...) -> i64`` (filters, helpers); falling off the end
  returns 0, as Python's None is false;
- *step* functions ``step(state *, x) -> i64`` (reduce steps), where the state is an
  array of 64-bit slots named by the reduce's fields; they return 0, or 1 when an
  index into a state array was out of range (the step is abandoned there, and the
  caller counts it).
"""
import ast

from llvmlite import ir

from .kernelir import PTR, KernelOps, add_maps
from .subset import BINOPS, CMPOPS, JitError, all_functions

I64, I32, I1, I8 = ir.IntType(64), ir.IntType(32), ir.IntType(1), ir.IntType(8)
ZERO, ONE = ir.Constant(I64, 0), ir.Constant(I64, 1)
STATUS_INDEX = 1    # a step's return value: an index out of range


class Module:
    """One LLVM module of compiled functions, with its debug-info skeleton; maps:
    {name: jit.Map} for programs (they must exist before the compile unit, which
    lists them)."""

    def __init__(self, name, filename, maps=None):
        self.ir = ir.Module(name=name)
        self.ir.triple = "bpfel"
        self.ir.data_layout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
        directory, _, base = filename.rpartition("/")
        self.di_file = self.ir.add_debug_info("DIFile", {"filename": base or filename,
                                                         "directory": directory or "."})
        self.di_long = self.ir.add_debug_info("DIBasicType", {
            "name": "long", "size": 64, "encoding": ir.DIToken("DW_ATE_signed")})
        self.di_ptr = self.ir.add_debug_info("DIDerivedType", {
            "tag": ir.DIToken("DW_TAG_pointer_type"), "baseType": self.di_long, "size": 64})
        self.maps, map_vars = add_maps(self, maps or {})
        cu = {"language": ir.DIToken("DW_LANG_C99"), "file": self.di_file,
              "producer": "pybpf.jit", "runtimeVersion": 0, "isOptimized": True,
              "emissionKind": ir.DIToken("FullDebug")}
        if map_vars:
            cu["globals"] = self.ir.add_metadata(map_vars)
        self.di_cu = self.ir.add_debug_info("DICompileUnit", cu, is_distinct=True)
        self.ir.add_named_metadata("llvm.dbg.cu", self.di_cu)
        for key, value in (("Dwarf Version", 4), ("Debug Info Version", 3)):
            self.ir.add_named_metadata("llvm.module.flags",
                                       [ir.Constant(I32, 2), key, ir.Constant(I32, value)])
        self.functions = {}    # name -> ir.Function
        self._params = []      # (subprogram, line, [(name, type)]) for finish()

    def add_license(self, text=b"GPL"):
        """The ``license`` section: GPL, which the helpers of tracing programs need."""
        ty = ir.ArrayType(I8, len(text) + 1)
        gv = ir.GlobalVariable(self.ir, ty, name="_license")
        gv.initializer = ir.Constant(ty, bytearray(text + b"\0"))
        gv.section = "license"

    def subprogram(self, name, line, args):
        """The DISubprogram of a function; args: [(name, debug type)]. The parameters'
        names reach BTF (the kernel refuses a FUNC with an unnamed argument) through
        the subprogram's retainedNodes, which :meth:`finish` adds."""
        sty = self.ir.add_debug_info("DISubroutineType", {
            "types": self.ir.add_metadata([self.di_long] + [t for _, t in args])})
        sp = self.ir.add_debug_info("DISubprogram", {
            "name": name, "file": self.di_file, "line": line, "type": sty,
            "isLocal": False, "isDefinition": True, "unit": self.di_cu, "scopeLine": line,
            "spFlags": ir.DIToken("DISPFlagDefinition | DISPFlagOptimized")},
            is_distinct=True)
        self._params.append((sp, line, args))
        return sp

    def finish(self):
        """Give each subprogram its parameters (DILocalVariables with arg numbers).
        They refer to the subprogram and it to them, a cycle llvmlite cannot hash, so
        this comes last: no metadata is added after it."""
        for sp, line, args in self._params:
            nodes = [self.ir.add_debug_info("DILocalVariable", {
                "name": name, "arg": i + 1, "scope": sp, "file": self.di_file,
                "line": line, "type": ty}) for i, (name, ty) in enumerate(args)]
            sp.operands = sp.operands + (("retainedNodes", self.ir.add_metadata(nodes)),)
        self._params = []
        return self.ir

    def add(self, root, entry_name=None, step=False, section=None):
        """Compile root (a subset.Function) and its callees; root becomes the global
        function entry_name (default: its own name); with section, a program there,
        taking the context."""
        for fn in all_functions(root):
            if fn.name in self.functions:
                continue
            is_root = fn is root
            name = (entry_name or fn.name) if is_root else fn.name
            _FunctionGen(self, fn, name, exported=is_root, step=step and is_root,
                         section=section if is_root else None).emit()
        return self.functions[entry_name or root.name]


class _FunctionGen(KernelOps):
    def __init__(self, module, fn, name, exported, step, section=None):
        self.m, self.fn, self.step, self.section = module, fn, step, section
        params = fn.params
        if section is not None:
            types, di = [PTR], [(params[0] if params else "ctx", module.di_ptr)]
        elif step:
            if len(params) != 2:
                raise JitError(f"{fn.filename}:{fn.node.lineno + fn.first_line} (in "
                               f"{fn.name}): a reduce step takes (state, x)")
            types, di = [I64.as_pointer(), I64], [(params[0], module.di_ptr),
                                                  (params[1], module.di_long)]
        else:
            types, di = [I64] * len(params), [(p, module.di_long) for p in params]
        self.func = ir.Function(module.ir, ir.FunctionType(I64, types), name=name)
        self.func.attributes.add("nounwind")
        if section is not None:
            self.func.section = section
        if not exported:
            self.func.linkage = "internal"
            self.func.attributes.add("alwaysinline")
        module.functions[name] = self.func
        self.line0 = fn.first_line
        self.di = module.subprogram(name, fn.node.lineno + self.line0, di)
        self.func.set_metadata("dbg", self.di)
        self.builder = ir.IRBuilder(self.func.append_basic_block("entry"))
        self.locals, self.loops = {}, []
        self.state = self.ctx = None

    # -- plumbing -------------------------------------------------------------------

    def at(self, node):
        self.builder.debug_metadata = self.m.ir.add_debug_info("DILocation", {
            "line": node.lineno + self.line0, "column": node.col_offset + 1,
            "scope": self.di})

    def slot(self, name):
        """The alloca of local name, made in the entry block."""
        if name not in self.locals:
            self.locals[name] = self.scratch(I64, name)
        return self.locals[name]

    def fail(self, node, what):
        raise JitError(f"{self.fn.filename}:{getattr(node, 'lineno', 0) + self.line0} "
                       f"(in {self.fn.name}): {what}")

    def new_block(self, name):
        return self.func.append_basic_block(name)

    def live(self):
        return not self.builder.block.is_terminated

    # -- statements -----------------------------------------------------------------

    def emit(self):
        node = self.fn.node
        self.at(node)
        params = self.fn.params
        if self.section is not None:
            self.ctx, params, args = self.func.args[0], [], []
        elif self.step:
            self.state = self.func.args[0]
            params = params[1:]
            args = self.func.args[1:]
        else:
            args = self.func.args
        for name, arg in zip(params, args):
            self.builder.store(arg, self.slot(name))
        self.block(node.body)
        if self.live():
            self.builder.ret(ZERO)

    def block(self, statements):
        for stmt in statements:
            if not self.live():
                self.builder.position_at_end(self.new_block("dead"))
            self.at(stmt)
            getattr(self, "stmt_" + type(stmt).__name__)(stmt)

    def stmt_Expr(self, node):
        pass  # a docstring (subset.py lets nothing else through)

    def stmt_Pass(self, node):
        pass

    def stmt_Return(self, node):
        if self.step:
            if node.value is not None:
                self.fail(node, "a reduce step returns nothing (it updates the state)")
            self.builder.ret(ZERO)
        else:
            self.builder.ret(self.value(node.value) if node.value is not None else ZERO)

    def stmt_Assign(self, node):
        target = node.targets[0]
        if isinstance(target, ast.Subscript) and self.is_map(target.value):
            return self.map_store(target, self.value(node.value))
        self.store(target, self.value(node.value))

    def stmt_Delete(self, node):
        for target in node.targets:
            self.map_delete(target)

    def stmt_AugAssign(self, node):
        if isinstance(node.target, ast.Subscript) and self.is_map(node.target.value):
            return self.map_augment(node.target, type(node.op), node.value)
        current = self.load(node.target)
        self.store(node.target, self.binop(type(node.op), current, self.value(node.value),
                                           node))

    def stmt_If(self, node):
        then, other, done = self.new_block("then"), self.new_block("else"), \
            self.new_block("endif")
        self.builder.cbranch(self.truth(node.test), then, other)
        for blk, body in ((then, node.body), (other, node.orelse)):
            self.builder.position_at_end(blk)
            self.block(body)
            if self.live():
                self.builder.branch(done)
        self.builder.position_at_end(done)

    def stmt_For(self, node):
        start, stop, step = _range_args(node.bounds)
        var = self.slot(node.target.id)
        self.builder.store(ir.Constant(I64, start), var)
        head, body, latch, done = (self.new_block(n) for n in ("for", "body", "next", "endfor"))
        self.builder.branch(head)
        self.builder.position_at_end(head)
        i = self.builder.load(var)
        cond = self.builder.icmp_signed("<" if step > 0 else ">", i, ir.Constant(I64, stop))
        self.builder.cbranch(cond, body, done)
        self.builder.position_at_end(body)
        self.loops.append((latch, done))
        self.block(node.body)
        self.loops.pop()
        if self.live():
            self.builder.branch(latch)
        self.builder.position_at_end(latch)
        self.builder.store(self.builder.add(self.builder.load(var), ir.Constant(I64, step)),
                           var)
        self.builder.branch(head)
        self.builder.position_at_end(done)

    def stmt_Break(self, node):
        self.builder.branch(self.loops[-1][1])

    def stmt_Continue(self, node):
        self.builder.branch(self.loops[-1][0])

    # -- places ---------------------------------------------------------------------

    def place(self, target):
        """The pointer a target names: a local's slot, or a state slot (for arrays,
        after a bounds check that abandons the step when it fails)."""
        if isinstance(target, ast.Name):
            return self.slot(target.id)
        index = None
        if isinstance(target, ast.Subscript):
            target, index = target.value, target.slice
        field = self.fn.state[target.attr]
        if index is None:
            return self.builder.gep(self.state, [ir.Constant(I64, field.slot)])
        i = self.value(index)
        length = ir.Constant(I64, field.length)
        # Python's negative indexes count from the end; beyond either end: abandon.
        i = self.builder.select(self.builder.icmp_signed("<", i, ZERO),
                                self.builder.add(i, length), i)
        ok, bad = self.new_block("inbounds"), self.new_block("outofbounds")
        self.builder.cbranch(self.builder.icmp_unsigned("<", i, length), ok, bad)
        self.builder.position_at_end(bad)
        self.builder.ret(ir.Constant(I64, STATUS_INDEX))
        self.builder.position_at_end(ok)
        return self.builder.gep(self.state, [self.builder.add(i, ir.Constant(I64, field.slot))])

    def load(self, target):
        if isinstance(target, ast.Name) and target.id not in self.locals:
            return self.name_value(target)
        if isinstance(target, ast.Subscript) and self.is_map(target.value):
            return self.map_get(target)
        if isinstance(target, ast.Subscript) and self.is_ctx(target.value):
            return self.ctx_load(target)
        return self.builder.load(self.place(target))

    def store(self, target, value):
        self.builder.store(value, self.place(target))

    # -- expressions ----------------------------------------------------------------

    def name_value(self, node):
        if node.id in self.locals:
            return self.builder.load(self.locals[node.id])
        if node.id in self.fn.constants:
            return ir.Constant(I64, self.fn.constants[node.id])
        self.fail(node, f"{node.id!r} is used before it is assigned (and is no integer "
                        f"constant of the module)")

    def value(self, node):
        self.builder.debug_metadata = self.m.ir.add_debug_info("DILocation", {
            "line": node.lineno + self.line0, "column": node.col_offset + 1,
            "scope": self.di})
        kind = type(node).__name__
        return getattr(self, "expr_" + kind)(node)

    def expr_Constant(self, node):
        return ir.Constant(I64, int(node.value))

    def expr_Name(self, node):
        return self.name_value(node)

    def expr_Attribute(self, node):
        return self.load(node)

    expr_Subscript = expr_Attribute

    def expr_BinOp(self, node):
        return self.binop(type(node.op), self.value(node.left), self.value(node.right), node)

    def binop(self, op, a, b, node):
        B = self.builder
        sym = BINOPS[op]
        if sym == "+":
            return B.add(a, b)
        if sym == "-":
            return B.sub(a, b)
        if sym == "*":
            return B.mul(a, b)
        if sym in ("&", "|", "^"):
            return {"&": B.and_, "|": B.or_, "^": B.xor}[sym](a, b)
        if sym in ("<<", ">>"):
            count = B.and_(b, ir.Constant(I64, 63))      # BPF's modulo-64 shift count
            return B.shl(a, count) if sym == "<<" else B.ashr(a, count)
        if isinstance(b, ir.Constant) and b.constant > 0:
            return self.by_positive_constant(sym, a, b)
        q = self.floor_div(a, b)
        if sym == "//":
            return q
        # a - (a // b) * b, and a itself for b == 0 (where q is 0)
        return B.sub(a, B.mul(q, b))

    def by_positive_constant(self, sym, a, c):
        """a // c or a % c for a constant c > 0, the common case (x % 3 == 0): from
        the magnitude's unsigned quotient and remainder, which LLVM turns into a
        multiplication."""
        B = self.builder
        neg = B.icmp_signed("<", a, ZERO)
        ua = B.select(neg, B.neg(a), a)
        r = B.urem(ua, c)
        inexact = B.and_(neg, B.icmp_unsigned("!=", r, ZERO))
        if sym == "%":
            return B.select(inexact, B.sub(c, r), r)
        q = B.udiv(ua, c)
        q = B.select(neg, B.neg(q), q)
        return B.select(inexact, B.sub(q, ONE), q)

    def floor_div(self, a, b):
        """Python's a // b from unsigned division of the magnitudes (BPF before cpu v4
        has no signed division); 0 for b == 0."""
        B = self.builder
        neg = lambda v: B.icmp_signed("<", v, ZERO)  # noqa: E731
        ua = B.select(neg(a), B.neg(a), a)
        safe_b = B.select(B.icmp_signed("==", b, ZERO), ONE, b)
        ub = B.select(neg(safe_b), B.neg(safe_b), safe_b)
        q, r = B.udiv(ua, ub), B.urem(ua, ub)
        opposite = neg(B.xor(a, safe_b))
        q = B.select(opposite, B.neg(q), q)
        q = B.select(B.and_(opposite, B.icmp_unsigned("!=", r, ZERO)), B.sub(q, ONE), q)
        return B.select(B.icmp_signed("==", b, ZERO), ZERO, q)

    def expr_UnaryOp(self, node):
        v = self.value(node.operand)
        if isinstance(node.op, ast.USub):
            return self.builder.neg(v)
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.Invert):
            return self.builder.not_(v)
        return self.builder.zext(self.builder.icmp_signed("==", v, ZERO), I64)

    def expr_Compare(self, node):
        if isinstance(node.ops[0], (ast.In, ast.NotIn)):
            return self.map_contains(node.left, node.comparators[0],
                                     isinstance(node.ops[0], ast.NotIn))
        left = self.value(node.left)
        result = None
        for op, right_node in zip(node.ops, node.comparators):
            right = self.value(right_node)
            c = self.builder.icmp_signed(CMPOPS[type(op)], left, right)
            result = c if result is None else self.builder.and_(result, c)
            left = right
        return self.builder.zext(result, I64)

    def truth(self, node):
        return self.builder.icmp_signed("!=", self.value(node), ZERO)

    def expr_BoolOp(self, node):
        """``a and b``/``a or b`` with Python's value and short circuit."""
        is_and = isinstance(node.op, ast.And)
        done = self.new_block("bool.end")
        incoming = []
        for i, operand in enumerate(node.values):
            v = self.value(operand)
            if i == len(node.values) - 1:
                incoming.append((v, self.builder.block))
                self.builder.branch(done)
                break
            nxt = self.new_block("bool.next")
            decided = self.builder.icmp_signed("==" if is_and else "!=", v, ZERO)
            incoming.append((v, self.builder.block))
            self.builder.cbranch(decided, done, nxt)
            self.builder.position_at_end(nxt)
        self.builder.position_at_end(done)
        phi = self.builder.phi(I64)
        for v, blk in incoming:
            phi.add_incoming(v, blk)
        return phi

    def expr_IfExp(self, node):
        then, other, done = self.new_block("ifx.then"), self.new_block("ifx.else"), \
            self.new_block("ifx.end")
        self.builder.cbranch(self.truth(node.test), then, other)
        self.builder.position_at_end(then)
        a = self.value(node.body)
        a_block = self.builder.block
        self.builder.branch(done)
        self.builder.position_at_end(other)
        b = self.value(node.orelse)
        b_block = self.builder.block
        self.builder.branch(done)
        self.builder.position_at_end(done)
        phi = self.builder.phi(I64)
        phi.add_incoming(a, a_block)
        phi.add_incoming(b, b_block)
        return phi

    def expr_Call(self, node):
        if ast.unparse(node.func) in self.fn.helpers:
            return self.helper_call(node)
        name = node.func.id
        args = [self.value(a) for a in node.args]
        B = self.builder
        if name == "abs":
            return B.select(B.icmp_signed("<", args[0], ZERO), B.neg(args[0]), args[0])
        if name in ("min", "max"):
            a, b = args
            return B.select(B.icmp_signed("<" if name == "min" else ">", b, a), b, a)
        callee = self.m.functions[name]
        if len(args) != len(callee.args):
            self.fail(node, f"{name}() takes {len(callee.args)} arguments, got {len(args)}")
        return B.call(callee, args)


def _range_args(values):
    if len(values) == 1:
        return 0, values[0], 1
    if len(values) == 2:
        return values[0], values[1], 1
    return tuple(values)
