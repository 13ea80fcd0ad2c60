"""CO-RE relocations: patch an object's instructions for the running kernel's types.

clang compiles ``task->pid`` (under ``preserve_access_index`` or the
``bpf_core_read.h`` macros) into an instruction holding the offset *its* headers gave,
plus a .BTF.ext record: "the value in instruction K is the FIELD_BYTE_OFFSET of access
path 0:58 in local type 12". Before loading, the loader finds what that path means in
the kernel's BTF and rewrites the instruction. The rules follow libbpf's, so an object
that loads with libbpf loads with pybpf (see candidates.py for which kernel types a
local type may stand for).

For the loader::

    cache = CoreCache(Btf.vmlinux())           # once; shared by every program
    code, results = relocate_section(section_bytes, ext.core_relos.get(name, []),
                                     obj_btf, cache, section=name)

``code`` is the section with every relocation applied (then split it into programs);
``results`` has one :class:`RelocationResult` per record. A relocation that cannot be
satisfied because the kernel lacks the type, field or enumerator is not an error:
its instruction is replaced by a call to helper 0xbad2310, which the verifier accepts
only in unreachable code (so ``if (bpf_core_field_exists(...))`` guards work), and
the result carries a ``message`` naming what was missing. When the verifier rejects
the program, :func:`poisoned_insn` finds that call in its log, and the result of the
relocation there explains the refusal. Malformed records, instructions that do not
hold the value their record promises, and kernel types that fit ambiguously raise
:class:`CoreError`.

Terms: the *access string* ``"0:1:2"`` lists indexes from the local root type: first
an array index on the root (``p[0]``), then member indexes (anonymous struct/union
members count as steps) and array indexes. A *spec* is that path resolved in one BTF:
its named-field and array-index steps (*accessors*) and the bit offset it reaches.
"""
from collections import namedtuple

from ..errors import InputError
from .. import asm
from . import types as T
from .candidates import (
    Candidate, CoreCache, CoreError, essential_name, fields_compatible, types_compatible,
    types_match,
)
from .ext import CoreReloKind as K
from .types import BtfError

__all__ = ["relocate_section", "apply_relocation", "resolve", "RelocationResult",
           "Resolution", "CoreCache", "CoreError", "Candidate", "parse_spec", "poisoned_insn",
           "POISON_HELPER"]

POISON_HELPER = 0xBAD2310  # "bad relo": the verifier says "invalid func unknown#195896080"
MAX_SPEC_LEN = 64

FIELD_KINDS = frozenset((K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_EXISTS,
                         K.FIELD_SIGNED, K.FIELD_LSHIFT_U64, K.FIELD_RSHIFT_U64))
TYPE_KINDS = frozenset((K.TYPE_ID_LOCAL, K.TYPE_ID_TARGET, K.TYPE_EXISTS, K.TYPE_SIZE,
                        K.TYPE_MATCHES))
ENUM_KINDS = frozenset((K.ENUMVAL_EXISTS, K.ENUMVAL_VALUE))
# Kinds whose job is to say "missing": a missing target gives 0, never poison.
EXISTS_KINDS = frozenset((K.FIELD_EXISTS, K.TYPE_EXISTS, K.TYPE_MATCHES, K.ENUMVAL_EXISTS))

_U64 = (1 << 64) - 1
_BPF_LDX, _BPF_ST, _BPF_STX, _BPF_ALU, _BPF_ALU64 = 1, 2, 3, 4, 7
_BPF_X = 0x08
_LD_IMM64 = 0x18
_SIZE_BITS = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
_SIZE_OF_BITS = {bits: size for size, bits in _SIZE_BITS.items()}

Accessor = namedtuple("Accessor", "type_id idx name")
Accessor.__doc__ = ("One step of a spec: a named member (``idx`` into the members of "
                    "struct/union ``type_id``) or, with name None, an array index "
                    "(``type_id`` is then the element type).")


class Spec:
    """An access path resolved in one BTF (see the module docstring)."""
    __slots__ = ("btf", "root_id", "kind", "raw", "access", "bit_offset")

    def __init__(self, btf, root_id, kind):
        self.btf, self.root_id, self.kind = btf, root_id, kind
        self.raw, self.access, self.bit_offset = [], [], 0

    def path(self):
        """The path in C: ``task_struct.sig.list[1]``; anonymous members are skipped,
        as C names them. Enumerators print as ``enum_name::VALUE``."""
        t = self.btf.type(self.root_id)
        root = t.name or f"({t.KIND.name.lower()})"
        if not self.access:
            return self.btf.type_name(self.root_id)
        if self.kind in ENUM_KINDS:
            return f"{root}::{self.access[0].name}"
        first = self.access[0].idx
        parts = [root, f"[{first}]" if first else ""]
        for acc in self.access[1:]:
            parts.append(f".{acc.name}" if acc.name is not None else f"[{acc.idx}]")
        return "".join(parts)


Resolution = namedtuple("Resolution", "old new poison validate old_size new_size "
                                      "resize_ok targets reason")
Resolution.__doc__ = """What one relocation resolves to, before any instruction is touched.

``old``: the value clang compiled in (what the instruction must hold when
``validate``); ``new``: the value for this kernel (both u64). ``poison``: no target
fits, the instruction must not run. ``old_size``/``new_size``: the field's size for a
FIELD_BYTE_OFFSET load/store (0 otherwise) and ``resize_ok`` whether that memory access
may change size. ``targets``: the Candidates that matched. ``reason``: why nothing
matched, for messages."""

RelocationResult = namedtuple("RelocationResult", "index section slot kind type_id access "
                                                  "what old new poisoned targets message")
RelocationResult.__doc__ = """One applied relocation.

``index`` is the record's position among the section's CO-RE records (libbpf's
"relo #N"), ``slot`` the instruction's 8-byte slot in the section (insn_off // 8).
``what`` is the path in C (``field 'task_struct.pid'``). ``old``/``new`` are the
values before and after. ``poisoned``: the instruction became ``call 0xbad2310``;
``message`` then says what the kernel lacks (None otherwise). ``targets`` are the
matching kernel types (Candidate tuples; empty when none matched)."""


# ---- access strings and local specs ---------------------------------------------------

def _size(btf, type_id, what):
    try:
        return btf.size_of(type_id)
    except BtfError as e:
        raise CoreError(f"{what}: {e}") from None


def _parse_access(access_str):
    parts = access_str.split(":") if access_str else []
    if not parts or not all(p.isascii() and p.isdigit() for p in parts):
        raise CoreError(f"malformed CO-RE access string {access_str!r} (expected "
                        f"indexes like '0:1:2')")
    if len(parts) > MAX_SPEC_LEN:
        raise CoreError(f"CO-RE access string {access_str!r} has {len(parts)} steps; "
                        f"at most {MAX_SPEC_LEN} are supported")
    return [int(p) for p in parts]


def parse_spec(btf, type_id, access_str, kind):
    """The local spec of a relocation record: its access string resolved in the
    object's own BTF. CoreError when the record does not fit that BTF."""
    what = f"access {access_str!r} on type id {type_id}"
    try:
        btf.type(type_id)
    except BtfError as e:
        raise CoreError(f"{what}: {e}") from None
    spec = Spec(btf, type_id, kind)
    if kind in TYPE_KINDS:
        if access_str != "0":
            raise CoreError(f"{what}: a {kind.name} relocation's access string must be "
                            f"'0'")
        return spec
    raw = spec.raw = _parse_access(access_str)
    root = btf.resolve(type_id)
    t = btf.type(root)
    if kind in ENUM_KINDS:
        if not isinstance(t, (T.Enum, T.Enum64)) or len(raw) != 1 or raw[0] >= len(t.values):
            raise CoreError(f"{what}: an enum value relocation needs an enum and the index "
                            f"of one of its values")
        spec.access.append(Accessor(root, raw[0], t.values[raw[0]].name))
        return spec
    if kind not in FIELD_KINDS:
        raise CoreError(f"{what}: unknown CO-RE relocation kind {int(kind)}")
    spec.access.append(Accessor(root, raw[0], None))
    spec.bit_offset = raw[0] * _size(btf, root, what) * 8
    type_id = root
    for step in raw[1:]:
        type_id = btf.resolve(type_id)
        t = btf.type(type_id)
        if isinstance(t, T.COMPOSITES):
            if step >= len(t.members):
                raise CoreError(f"{what}: {btf.type_name(type_id)} has no member #{step}")
            m = t.members[step]
            spec.bit_offset += m.bit_offset
            if m.name:
                spec.access.append(Accessor(type_id, step, m.name))
            type_id = m.type
        elif isinstance(t, T.Array):
            elem = btf.resolve(t.type)
            if step >= t.nelems and not _is_flex(btf, spec.access[-1], t):
                raise CoreError(f"{what}: index {step} is outside {btf.type_name(type_id)}")
            spec.access.append(Accessor(elem, step, None))
            spec.bit_offset += step * _size(btf, elem, what) * 8
            type_id = elem
        else:
            raise CoreError(f"{what}: step {step} goes into {btf.type_name(type_id)}, which "
                            f"is neither a struct/union nor an array")
    return spec


def _is_flex(btf, prev, array):
    """A flexible array member: size 0, the last member of its struct."""
    if prev.name is None or array.nelems:
        return False
    return prev.idx == len(btf.type(prev.type_id).members) - 1


# ---- matching a local spec in a target type -------------------------------------------

def _match(local, btf, type_id, why):
    """The target spec of local in candidate type_id of btf, or None (reason appended
    to why)."""
    if local.kind in TYPE_KINDS:
        check = types_match if local.kind == K.TYPE_MATCHES else types_compatible
        if check(local.btf, local.root_id, btf, type_id):
            return Spec(btf, type_id, local.kind)
        why.append(f"{btf.type_name(type_id)} (id {type_id}) does not "
                   f"{'match' if local.kind == K.TYPE_MATCHES else 'fit'} "
                   f"{local.btf.type_name(local.root_id)}")
        return None
    if local.kind in ENUM_KINDS:
        return _match_enum(local, btf, type_id, why)
    return _match_field(local, btf, type_id, why)


def _match_enum(local, btf, type_id, why):
    type_id = btf.resolve(type_id)
    t = btf.type(type_id)
    name = local.access[0].name
    if isinstance(t, (T.Enum, T.Enum64)):
        wanted = essential_name(name)
        for i, v in enumerate(t.values):
            if essential_name(v.name) == wanted:
                spec = Spec(btf, type_id, local.kind)
                spec.raw, spec.access = [i], [Accessor(type_id, i, v.name)]
                return spec
    why.append(f"{btf.type_name(type_id)} has no value {essential_name(name)}")
    return None


def _match_field(local, btf, type_id, why):
    spec = Spec(btf, type_id, local.kind)
    for i, acc in enumerate(local.access):
        type_id = btf.resolve(type_id)
        if acc.name is not None:
            type_id = _match_member(local.btf, acc, btf, type_id, spec, why, top=True)
            if type_id is None:
                return None
            continue
        if i > 0:
            t = btf.type(type_id)
            if not isinstance(t, T.Array):
                why.append(f"{_spec_text(spec)} is {btf.type_name(type_id)}, not an array")
                return None
            if acc.idx >= t.nelems and not _is_flex(btf, spec.access[-1], t):
                why.append(f"index {acc.idx} is outside {_spec_text(spec)} "
                           f"({btf.type_name(type_id)})")
                return None
            type_id = btf.resolve(t.type)
        if len(spec.raw) >= MAX_SPEC_LEN:
            raise CoreError(f"target access path deeper than {MAX_SPEC_LEN} steps")
        spec.access.append(Accessor(type_id, acc.idx, None))
        spec.raw.append(acc.idx)
        spec.bit_offset += acc.idx * _size(btf, type_id, "target array element") * 8
    return spec


def _spec_text(spec):
    return f"'{spec.path()}'"


def _match_member(local_btf, acc, btf, type_id, spec, why, top=False):
    """Find local member acc in target struct/union type_id, looking into anonymous
    members; extends spec and returns the member's type id, or None (spec unchanged)."""
    type_id = btf.resolve(type_id)
    t = btf.type(type_id)
    local_member = local_btf.type(acc.type_id).members[acc.idx]
    if not isinstance(t, T.COMPOSITES):
        if top:
            why.append(f"{_spec_text(spec)} is {btf.type_name(type_id)}, not a struct or "
                       f"union")
        return None
    for i, m in enumerate(t.members):
        if len(spec.raw) >= MAX_SPEC_LEN:
            raise CoreError(f"target access path deeper than {MAX_SPEC_LEN} steps")
        spec.raw.append(i)
        spec.bit_offset += m.bit_offset
        if not m.name:
            found = _match_member(local_btf, acc, btf, m.type, spec, why)
            if found is not None:
                return found
        elif m.name == local_member.name:
            if fields_compatible(local_btf, local_member.type, btf, m.type):
                spec.access.append(Accessor(type_id, i, m.name))
                return m.type
            why.append(f"member '{m.name}' of {btf.type_name(type_id)} is "
                       f"{btf.type_name(m.type)}, incompatible with the local "
                       f"{local_btf.type_name(local_member.type)}")
        spec.raw.pop()
        spec.bit_offset -= m.bit_offset
    if top:
        why.append(f"{btf.type_name(type_id)} has no member '{local_member.name}'")
    return None


# ---- values ---------------------------------------------------------------------------

class _Poison(Exception):
    """The relocation's value cannot exist for this target: poison the instruction."""


def _field_value(kind, spec, byteorder):
    """(value, size, type id) of a field relocation in spec; size/type id describe the
    memory access for FIELD_BYTE_OFFSET (0 otherwise). Also whether clang's value
    may be checked (bitfield layouts are not checked, as libbpf does not)."""
    if kind == K.FIELD_EXISTS:
        return (1 if spec is not None else 0), 0, 0, True
    if spec is None:
        raise _Poison()
    btf, acc = spec.btf, spec.access[-1]
    if acc.name is None:  # an array element, or the root itself
        size = _size(btf, acc.type_id, "array element")
        if kind == K.FIELD_BYTE_OFFSET:
            return spec.bit_offset // 8, size, acc.type_id, True
        if kind == K.FIELD_BYTE_SIZE:
            return size, 0, 0, True
        raise CoreError(f"a {kind.name} relocation cannot apply to an array element "
                        f"('{spec.path()}')")
    member = btf.type(acc.type_id).members[acc.idx]
    field_id = btf.resolve(member.type)
    mt = btf.type(field_id)
    bit_off, bit_size = spec.bit_offset, member.bitfield_size
    if bit_size:
        size = getattr(mt, "size", 0)
        if size not in (1, 2, 4, 8):
            raise CoreError(f"bitfield '{spec.path()}' has a base type of {size} bytes")
        byte_off = bit_off // 8 // size * size
        while bit_off + bit_size - byte_off * 8 > size * 8:
            if size >= 8:
                raise CoreError(f"bitfield '{spec.path()}' cannot be read with one 64-bit "
                                f"load")
            size *= 2
            byte_off = bit_off // 8 // size * size
    else:
        size = _size(btf, field_id, f"field '{spec.path()}'")
        byte_off, bit_size = bit_off // 8, size * 8
    validate = not member.bitfield_size  # clang and we may disagree on bitfield loads
    if kind == K.FIELD_BYTE_OFFSET:
        if member.bitfield_size:
            return byte_off, 0, 0, False
        return byte_off, size, field_id, True
    if kind == K.FIELD_BYTE_SIZE:
        return size, 0, 0, validate
    if kind == K.FIELD_SIGNED:
        signed = (isinstance(mt, (T.Enum, T.Enum64)) and mt.signed) or (
            isinstance(mt, T.Int) and mt.signed)
        return int(bool(signed)), 0, 0, True
    if kind == K.FIELD_LSHIFT_U64:
        if byteorder == "little":
            return 64 - (bit_off + bit_size - byte_off * 8), 0, 0, validate
        return (8 - size) * 8 + (bit_off - byte_off * 8), 0, 0, validate
    if kind == K.FIELD_RSHIFT_U64:
        return 64 - bit_size, 0, 0, True
    raise CoreError(f"unknown field relocation kind {kind!r}")


def _type_value(kind, spec):
    if spec is None:
        return 0
    if kind == K.TYPE_ID_TARGET:
        return spec.root_id
    if kind in (K.TYPE_EXISTS, K.TYPE_MATCHES):
        return 1
    if kind == K.TYPE_SIZE:
        return _size(spec.btf, spec.root_id, "TYPE_SIZE")
    raise CoreError(f"unknown type relocation kind {kind!r}")


def _enum_value(kind, spec):
    if kind == K.ENUMVAL_EXISTS:
        return 1 if spec is not None else 0
    if spec is None:
        raise _Poison()
    acc = spec.access[0]
    t = spec.btf.type(acc.type_id)
    value = t.values[acc.idx].value
    if isinstance(t, T.Enum):  # 32-bit values widen as signed, as the kernel's s32 does
        value = value - (1 << 32) if value & 0x80000000 else value
    return value & _U64


def _values(local, target, byteorder):
    """Resolution for one local spec and one target spec (None: nothing matched)."""
    kind = local.kind
    if kind in TYPE_KINDS:
        return Resolution(_type_value(kind, local), _type_value(kind, target), False,
                          kind != K.TYPE_ID_TARGET, 0, 0, True, (), None)
    if kind in ENUM_KINDS:
        old = _enum_value(kind, local)
        try:
            new = _enum_value(kind, target)
        except _Poison:
            return Resolution(old, 0, True, True, 0, 0, True, (), None)
        return Resolution(old, new, False, True, 0, 0, True, (), None)
    old, old_size, old_type, validate = _field_value(kind, local, byteorder)
    try:
        new, new_size, new_type, _ = _field_value(kind, target, byteorder)
    except _Poison:
        return Resolution(old, 0, True, validate, old_size, 0, True, (), None)
    resize_ok = True
    if old_size != new_size:
        lt, tt = local.btf.type(old_type), target.btf.type(new_type)
        resize_ok = (isinstance(lt, T.Ptr) and isinstance(tt, T.Ptr)) or (
            isinstance(lt, T.Int) and isinstance(tt, T.Int) and not lt.signed
            and not tt.signed)
    return Resolution(old, new, False, validate, old_size, new_size, resize_ok, (), None)


def resolve(relo, local_btf, cache, byteorder="little"):
    """The Resolution of one CO-RE record (CoreRelo) against the cache's targets.
    Raises CoreError for a malformed record or when matching candidates disagree."""
    return _resolve(relo, local_btf, cache, byteorder)[1]


def _resolve(relo, local_btf, cache, byteorder):
    """(local spec, Resolution) of one record."""
    kind = relo.kind
    if not isinstance(kind, K):
        raise CoreError(f"unknown CO-RE relocation kind {int(kind)} (this pybpf knows "
                        f"kinds 0..{max(K)})")
    local = parse_spec(local_btf, relo.type_id, relo.access_str, kind)
    if kind == K.TYPE_ID_LOCAL:
        return local, Resolution(relo.type_id, relo.type_id, False, False, 0, 0, True, (),
                                 None)
    root = local_btf.type(relo.type_id)
    if not root.name:
        raise CoreError(f"{kind.name} relocation of an anonymous type "
                        f"({local_btf.type_name(relo.type_id)}): CO-RE finds kernel types "
                        f"by name")
    matched, why, first, first_spec = [], [], None, None
    candidates = cache.candidates(local_btf, relo.type_id)
    for cand in candidates:
        target = _match(local, cand.btf, cand.type_id, why)
        if target is None:
            continue
        res = _values(local, target, byteorder)
        if first is None:
            first, first_spec = res, target
        elif target.bit_offset != first_spec.bit_offset:
            raise CoreError(_ambiguity(matched[0], cand, "field offset",
                                       first_spec.bit_offset // 8, target.bit_offset // 8,
                                       cache))
        elif (res.poison, res.new) != (first.poison, first.new):
            raise CoreError(_ambiguity(matched[0], cand, "value", first.new, res.new, cache))
        matched.append(cand)
    if first is not None:
        cache.narrow(local_btf, relo.type_id, matched)
        return local, first._replace(targets=tuple(matched))
    res = _values(local, None, byteorder)
    if candidates:
        reason = why[0] if why else "no candidate fits"
    else:
        reason = (f"no {_kind_word(root)} named '{essential_name(root.name)}' in "
                  f"{cache.what}")
    return local, res._replace(reason=reason)


def _kind_word(t):
    if isinstance(t, (T.Enum, T.Enum64)):
        return "enum"
    return t.KIND.name.lower().replace("_", " ")


def _ambiguity(a, b, what, va, vb, cache):
    return (f"ambiguous: {a.btf.type_name(a.type_id)} (id {a.type_id} in {a.source}) and "
            f"{b.btf.type_name(b.type_id)} (id {b.type_id} in {b.source}) both fit, with "
            f"different {what}s ({va} and {vb}); {cache.what} must have only one "
            f"fitting type")


# ---- instructions ---------------------------------------------------------------------

def _fits_imm32(value):
    return value < (1 << 32) or value >= (1 << 64) - (1 << 31)


def _poison(buf, pos, byteorder):
    """Turn the instruction at pos (both slots of an ld_imm64) into the invalid call."""
    slots = 2 if buf[pos] == _LD_IMM64 else 1
    call = asm.call(POISON_HELPER).encode(byteorder)
    for i in range(slots):
        buf[pos + 8 * i:pos + 8 * i + 8] = call


def _patch(buf, pos, res, byteorder, fail):
    """Apply res to the instruction at byte pos of buf; fail(text) raises. False when
    the instruction must be poisoned instead: a load/store whose field changed size
    in a way a wider/narrower access would misread (a signed int, a struct)."""
    code = buf[pos]
    cls = code & 0x07
    old, new = res.old & _U64, res.new & _U64
    if cls in (_BPF_ALU, _BPF_ALU64):
        if code & _BPF_X:
            fail("the instruction takes a register, not an immediate")
        imm = int.from_bytes(buf[pos + 4:pos + 8], byteorder, signed=True)
        if res.validate and imm & _U64 != old:
            fail(f"the instruction holds {imm}, not the expected {_signed(old)}")
        if not _fits_imm32(new):
            fail(f"the kernel's value {new} does not fit a 32-bit immediate")
        buf[pos + 4:pos + 8] = (new & 0xFFFFFFFF).to_bytes(4, byteorder)
        return True
    if cls in (_BPF_LDX, _BPF_ST, _BPF_STX):
        off = int.from_bytes(buf[pos + 2:pos + 4], byteorder, signed=True)
        if res.validate and off != old:
            fail(f"the instruction's offset is {off}, not the expected {old}")
        if new > 0x7FFF:
            fail(f"the kernel's offset {new} does not fit an instruction's 16-bit offset")
        if res.old_size != res.new_size:
            if not res.resize_ok:
                return False
            size = _SIZE_OF_BITS[code & 0x18]
            if size != res.old_size:
                fail(f"the instruction accesses {size} bytes, the field has "
                     f"{res.old_size}")
            if res.new_size not in _SIZE_BITS:
                fail(f"the kernel's field is {res.new_size} bytes, which no single load "
                     f"or store can access")
            buf[pos] = (code & ~0x18 & 0xFF) | _SIZE_BITS[res.new_size]
        buf[pos + 2:pos + 4] = new.to_bytes(2, byteorder)
        return True
    if code == _LD_IMM64:
        if pos + 16 > len(buf):
            fail("ld_imm64 is missing its second half")
        regs = buf[pos + 1]
        src = regs >> 4 if byteorder == "little" else regs & 0xF
        if src or any(buf[pos + 2:pos + 4]) or any(buf[pos + 8:pos + 12]):
            fail("the ld_imm64 is not a plain 64-bit constant load")
        imm = (int.from_bytes(buf[pos + 4:pos + 8], byteorder)
               | int.from_bytes(buf[pos + 12:pos + 16], byteorder) << 32)
        if res.validate and imm != old:
            fail(f"the instruction holds {imm}, not the expected {old}")
        buf[pos + 4:pos + 8] = (new & 0xFFFFFFFF).to_bytes(4, byteorder)
        buf[pos + 12:pos + 16] = (new >> 32).to_bytes(4, byteorder)
        return True
    fail(f"opcode {code:#04x} is not an ALU immediate, load/store or ld_imm64 "
         f"instruction, which are all CO-RE can patch")


def _signed(value):
    return value - (1 << 64) if value >> 63 else value


def apply_relocation(buf, relo, local_btf, cache, byteorder="little", section="", index=0,
                     at=None):
    """Resolve one record and patch buf (a bytearray of the section's instructions) in
    place; returns its RelocationResult. ``at``: where in buf the record's instruction
    is, when buf is a linked program rather than the section (messages and the result
    still give the section's slot, the one the object's tools show)."""
    slot = relo.insn_off // 8
    pos = relo.insn_off if at is None else at
    kind_name = relo.kind.name if isinstance(relo.kind, K) else str(relo.kind)
    head = f"CO-RE relocation #{index} in section {section!r} (instruction {slot}, " \
           f"{kind_name})"
    if pos % 8 or not 0 <= pos <= len(buf) - 8:
        raise CoreError(f"{head}: insn_off {relo.insn_off} is not an instruction of the "
                        f"{len(buf)}-byte section")
    try:
        local, res = _resolve(relo, local_btf, cache, byteorder)
    except CoreError as e:
        raise CoreError(f"{head}: {e}") from None
    what = _describe(local)

    def fail(text):
        raise CoreError(f"{head} of {what}: {text}; the object's code does not match its "
                        f"relocation record (was it modified after compiling?)")

    message = None
    if res.poison or not _patch(buf, pos, res, byteorder, fail):
        if res.poison:
            detail = f"not found in {cache.what}: {res.reason}"
        else:
            detail = (f"changed size from {res.old_size} to {res.new_size} bytes in "
                      f"{cache.what}, and only unsigned integers and pointers can be "
                      f"loaded or stored at another size")
        message = (f"CO-RE relocation #{index} in section {section!r} failed: {what} "
                   f"(access {relo.access_str}) {detail}")
        _poison(buf, pos, byteorder)
    return RelocationResult(index, section, slot, relo.kind, relo.type_id, relo.access_str,
                            what, res.old, res.new, message is not None, res.targets,
                            message)


def _describe(spec):
    if spec.kind in FIELD_KINDS:
        return f"field '{spec.path()}'"
    if spec.kind in ENUM_KINDS:
        return f"enum value '{spec.path()}'"
    return f"type '{spec.path()}'"


def relocate_section(code, relos, local_btf, targets, byteorder=None, section=""):
    """Apply a section's CO-RE records (``BtfExt.core_relos[section]``) to its code.

    ``code``: the section's bytes, or a list of pybpf.asm instructions; the result is
    of the same kind. ``local_btf``: the object's BTF (record type ids index it).
    ``targets``: a :class:`CoreCache` (reuse one across sections and programs), or
    what CoreCache() takes (a Btf, a list or mapping of them). ``byteorder``: the
    object's (and so the kernel's) byte order; defaults to the BTF's.
    Returns ``(code, [RelocationResult, ...])``; raises CoreError (see module doc).
    """
    cache = targets if isinstance(targets, CoreCache) else CoreCache(targets)
    byteorder = byteorder or local_btf.byteorder
    if byteorder not in ("little", "big"):
        raise InputError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
    as_insns = not isinstance(code, (bytes, bytearray, memoryview))
    buf = bytearray(asm.encode(code, byteorder) if as_insns else code)
    if len(buf) % 8:
        raise CoreError(f"section {section!r} is {len(buf)} bytes, not a whole number of "
                        f"8-byte instructions")
    results = [apply_relocation(buf, relo, local_btf, cache, byteorder, section, i)
               for i, relo in enumerate(relos)]
    return (asm.decode(bytes(buf), byteorder) if as_insns else bytes(buf)), results


def poisoned_insn(log):
    """The index of the poisoned instruction the verifier refused (from its log's
    ``N: (85) call unknown#195896080`` line), or None when the log shows none.
    The index is the loaded program's; map it back to a section slot to find the
    RelocationResult that explains it."""
    marker = f"call unknown#{POISON_HELPER}"
    last = None
    for line in (log or "").splitlines():
        head, sep, rest = line.partition(": ")
        if sep and head.strip().isdigit() and marker in rest:
            last = int(head)
    return last
