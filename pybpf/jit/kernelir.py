"""The IR for what only programs have: maps, helpers and the context.

Maps become BTF-defined maps, the form clang writes for libbpf: a global in ``.maps``
whose debug type is a struct of pointers (``int (*type)[1]``, ``long *key``, ...);
LLVM's BPF back end turns that into the BTF the loader reads, and a reference to the
global into the ``ld_imm64`` relocation the loader points at the map's fd. Helpers are
calls through a constant address (``call inttoptr (i64 14 to ptr)``), which the back
end emits as ``call 14``, as clang does for the helper declarations of bpf_helpers.h.

``m[k] += v`` (and ``-= &= |= ^=``) is atomic when the key exists (an ``atomicrmw``,
BPF's ``lock`` instructions); a missing key is inserted with BPF_NOEXIST, and if
another CPU inserted it first the update goes to that entry. The other operators
read, compute and store, which is exact per CPU (per-CPU maps) but may lose updates
made concurrently on other CPUs of a shared map.
"""
import ast

from llvmlite import ir

from ..kernel.constants import BPF_ANY, BPF_NOEXIST, HelperId
from .subset import BINOPS

I64, I32, I8 = ir.IntType(64), ir.IntType(32), ir.IntType(8)
PTR = I8.as_pointer()
ZERO = ir.Constant(I64, 0)
_ATOMIC = {"+": "add", "-": "sub", "&": "and", "|": "or", "^": "xor"}


def helper(number, ret, *args):
    fnty = ir.FunctionType(ret, list(args))
    callee = ir.Constant(I64, int(number)).inttoptr(fnty.as_pointer())
    callee.function_type = fnty        # what IRBuilder.call needs of a callee
    return callee


def add_maps(module, maps):
    """Globals in .maps for {name: jit.Map}, with their debug types; returns the
    globals by name and the DIGlobalVariableExpressions for the compile unit."""
    M, di_int = module.ir, module.ir.add_debug_info("DIBasicType", {
        "name": "int", "size": 32, "encoding": ir.DIToken("DW_ATE_signed")})
    di_uint = module.ir.add_debug_info("DIBasicType", {
        "name": "unsigned int", "size": 32, "encoding": ir.DIToken("DW_ATE_unsigned")})

    def pointer(to):
        return M.add_debug_info("DIDerivedType", {
            "tag": ir.DIToken("DW_TAG_pointer_type"), "baseType": to, "size": 64})

    def member(name, ty, index):
        return M.add_debug_info("DIDerivedType", {
            "tag": ir.DIToken("DW_TAG_member"), "name": name, "file": module.di_file,
            "baseType": pointer(ty), "size": 64, "offset": 64 * index})

    def number(value):               # __uint(name, value): int (*name)[value]
        return M.add_debug_info("DICompositeType", {
            "tag": ir.DIToken("DW_TAG_array_type"), "baseType": di_int,
            "size": 32 * value, "elements": M.add_metadata([
                M.add_debug_info("DISubrange", {"count": value})])})

    globals_, exprs = {}, []
    for name, m in maps.items():
        value = module.di_long
        if m.value_words > 1:
            value = M.add_debug_info("DICompositeType", {
                "tag": ir.DIToken("DW_TAG_array_type"), "baseType": module.di_long,
                "size": 64 * m.value_words, "elements": M.add_metadata([
                    M.add_debug_info("DISubrange", {"count": m.value_words})])})
        fields = [("type", number(int(m.type))), ("max_entries", number(m.max_entries)),
                  ("key", di_uint if m.is_array else module.di_long), ("value", value)]
        if m.flags:
            fields.append(("map_flags", number(m.flags)))
        struct = M.add_debug_info("DICompositeType", {
            "tag": ir.DIToken("DW_TAG_structure_type"), "file": module.di_file,
            "size": 64 * len(fields), "elements": M.add_metadata(
                [member(f, t, i) for i, (f, t) in enumerate(fields)])})
        lt = ir.LiteralStructType([PTR] * len(fields))
        gv = ir.GlobalVariable(M, lt, name=name)
        gv.initializer = ir.Constant(lt, None)
        gv.section, gv.align = ".maps", 8
        var = M.add_debug_info("DIGlobalVariable", {
            "name": name, "scope": module.di_file, "file": module.di_file, "line": 1,
            "type": struct, "isLocal": False, "isDefinition": True})
        expr = M.add_debug_info("DIGlobalVariableExpression", {
            "var": var, "expr": M.add_debug_info("DIExpression", {})})
        gv.set_metadata("dbg", expr)
        globals_[name] = gv
        exprs.append(expr)
    return globals_, exprs


class KernelOps:
    """The part of a function's IR generator (irgen._FunctionGen) for programs."""

    def scratch(self, ty, name=""):
        """A fresh stack slot, made in the entry block (BPF has no dynamic stack)."""
        with self.builder.goto_entry_block():
            self.builder.position_at_start(self.func.entry_basic_block)
            return self.builder.alloca(ty, name=name)

    def is_map(self, node):
        return isinstance(node, ast.Name) and node.id in self.fn.maps

    def is_ctx(self, node):
        return isinstance(node, ast.Name) and node.id == self.fn.ctx

    def _map_key(self, target):
        """The map's global, and a pointer to the key on the stack."""
        name = target.value.id
        key = self.value(target.slice)
        if self.fn.maps[name].is_array:
            slot = self.scratch(I32)
            self.builder.store(self.builder.trunc(key, I32), slot)
        else:
            slot = self.scratch(I64)
            self.builder.store(key, slot)
        return self.m.maps[name], slot

    def _lookup(self, gv, key):
        return self.builder.call(helper(HelperId.map_lookup_elem, PTR, PTR, PTR),
                                 [self.builder.bitcast(gv, PTR),
                                  self.builder.bitcast(key, PTR)])

    def _update(self, gv, key, value, flags):
        slot = self.scratch(I64)
        self.builder.store(value, slot)
        return self.builder.call(helper(HelperId.map_update_elem, I64, PTR, PTR, PTR, I64),
                                 [self.builder.bitcast(gv, PTR),
                                  self.builder.bitcast(key, PTR),
                                  self.builder.bitcast(slot, PTR), ir.Constant(I64, flags)])

    def _is_null(self, p):
        return self.builder.icmp_unsigned("==", p, ir.Constant(PTR, None))

    def map_get(self, target):
        """m[k]: the value, or 0 for a missing key."""
        B = self.builder
        p = self._lookup(*self._map_key(target))
        found, done = self.new_block("map.found"), self.new_block("map.got")
        start = B.block
        B.cbranch(self._is_null(p), done, found)
        B.position_at_end(found)
        v = B.load(B.bitcast(p, I64.as_pointer()))
        B.branch(done)
        B.position_at_end(done)
        phi = B.phi(I64)
        phi.add_incoming(ZERO, start)
        phi.add_incoming(v, found)
        return phi

    def map_contains(self, key_node, map_node, negate):
        p = self._lookup(*self._map_key(ast.Subscript(value=map_node, slice=key_node)))
        found = self.builder.icmp_unsigned("!=" if not negate else "==", p,
                                           ir.Constant(PTR, None))
        return self.builder.zext(found, I64)

    def map_store(self, target, value):
        """m[k] = v (a full map drops the store, as the kernel refuses it)."""
        gv, key = self._map_key(target)
        self._update(gv, key, value, BPF_ANY)

    def map_delete(self, target):
        gv, key = self._map_key(target)
        self.builder.call(helper(HelperId.map_delete_elem, I64, PTR, PTR),
                          [self.builder.bitcast(gv, PTR), self.builder.bitcast(key, PTR)])

    def map_augment(self, target, op, operand_node):
        """m[k] op= v: atomic for + - & | ^ on an existing key (see the module)."""
        B = self.builder
        sym = BINOPS[op]
        v = self.value(operand_node)
        gv, key = self._map_key(target)
        p = self._lookup(gv, key)
        found, missing, done = (self.new_block(n) for n in ("aug.found", "aug.missing",
                                                             "aug.done"))
        B.cbranch(self._is_null(p), missing, found)

        def apply(pointer):
            cell = B.bitcast(pointer, I64.as_pointer())
            if sym in _ATOMIC:
                B.atomic_rmw(_ATOMIC[sym], cell, v, "monotonic")
            else:
                B.store(self.binop(op, B.load(cell), v, target), cell)

        B.position_at_end(found)
        apply(p)
        B.branch(done)
        B.position_at_end(missing)
        failed = B.icmp_signed("!=", self._update(gv, key, self.binop(op, ZERO, v, target),
                                                  BPF_NOEXIST), ZERO)
        raced = self.new_block("aug.raced")
        B.cbranch(failed, raced, done)
        B.position_at_end(raced)        # inserted meanwhile, or the map is full
        again = self._lookup(gv, key)
        there = self.new_block("aug.there")
        B.cbranch(self._is_null(again), done, there)
        B.position_at_end(there)
        apply(again)
        B.branch(done)
        B.position_at_end(done)

    def helper_call(self, node):
        spec = self.fn.helpers[ast.unparse(node.func)]
        v = self.builder.call(helper(spec.helper_id, I64), [])
        if spec.shift:
            v = self.builder.lshr(v, ir.Constant(I64, spec.shift))
        if spec.mask != (1 << 64) - 1:
            v = self.builder.and_(v, ir.Constant(I64, spec.mask))
        return v

    def ctx_load(self, target):
        """ctx[i]: the context's 64-bit word i."""
        base = self.builder.bitcast(self.ctx, I64.as_pointer())
        return self.builder.load(self.builder.gep(base, [ir.Constant(I64,
                                                                     target.slice.value)]))
