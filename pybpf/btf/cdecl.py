"""C type declarations (a tool's shared header) as BTF, laid out as gcc lays them out.

clang puts no BTF into an object for a type only a local variable uses, which is how
bcc's libbpf-tools declare the ``struct event`` they send to user space: the type is
in the tool's header (opensnoop.h), not in the object. Reading that header gives
the event decoder (:mod:`pybpf.btf.values`) the type it needs.

What is understood: ``struct``/``union``/``enum`` definitions and ``typedef``s with
integer, enum, char, pointer, array, bitfield and nested struct/union members
(anonymous ones too), ``__attribute__((packed))`` and ``aligned(N)``, ``sizeof``;
``#define``d constants (:mod:`pybpf.btf.cpp`). The common kernel, libc and libbpf
typedefs (__u8..__u64, u32, pid_t, bool, size_t...) are predefined. Everything else at
file scope (prototypes, inline functions, variables) is skipped: a header written
for a BPF tool holds more than its types.

The layout is the LP64 System V one gcc (x86-64, aarch64) and clang -target bpf
share: natural alignment, long and pointers 8 bytes, a bitfield placed at the next
bit unless it would straddle a unit of its type, a struct padded to its alignment.
"""
from ..kernel import files
from . import types as T
from .cpp import Expr, HeaderError, preprocess
from .model import Btf

__all__ = ["HeaderError", "PREDEFINED", "load_header", "parse_header"]

_S, _B = T.INT_SIGNED, T.INT_BOOL
# Base types: their words, sorted -> (BTF name, size = alignment, encoding).
_BASE = {
    ("char",): ("char", 1, _S), ("char", "signed"): ("signed char", 1, _S),
    ("char", "unsigned"): ("unsigned char", 1, 0),
    ("short",): ("short", 2, _S), ("short", "unsigned"): ("unsigned short", 2, 0),
    ("int",): ("int", 4, _S), ("unsigned",): ("unsigned int", 4, 0),
    ("long",): ("long", 8, _S), ("long", "unsigned"): ("unsigned long", 8, 0),
    ("long", "long"): ("long long", 8, _S),
    ("long", "long", "unsigned"): ("unsigned long long", 8, 0),
    ("_Bool",): ("_Bool", 1, _B), ("__int128",): ("__int128", 16, _S),
    ("__int128", "unsigned"): ("unsigned __int128", 16, 0),
}
_FLOATS = {("float",): ("float", 4), ("double",): ("double", 8),
           ("double", "long"): ("long double", 16)}
_BASE_WORDS = {"char", "short", "int", "long", "signed", "unsigned", "_Bool", "__int128",
               "float", "double", "void"}
_IGNORED = {"const", "volatile", "static", "extern", "inline", "__inline", "__inline__",
            "register", "restrict", "__restrict", "__restrict__", "__extension__",
            "__volatile__", "__const", "_Atomic", "__always_inline", "__user", "__kernel"}


def _words(spelling):
    return tuple(sorted(spelling.split()))


# Typedefs every tool header takes for granted (linux/types.h, stdint.h, sys/types.h,
# vmlinux.h): name -> the base type they stand for.
PREDEFINED = {
    **{f"{p}{n}": w for n, w in ((8, "unsigned char"), (16, "unsigned short"),
                                 (32, "unsigned int"), (64, "unsigned long long"))
       for p in ("__u", "u")},
    **{f"{p}{n}": w for n, w in ((8, "signed char"), (16, "short"), (32, "int"),
                                 (64, "long long")) for p in ("__s", "s")},
    **{f"uint{n}_t": w for n, w in ((8, "unsigned char"), (16, "unsigned short"),
                                    (32, "unsigned int"), (64, "unsigned long"))},
    **{f"int{n}_t": w for n, w in ((8, "signed char"), (16, "short"), (32, "int"),
                                   (64, "long"))},
    **{f"__{e}{n}": w for n, w in ((16, "unsigned short"), (32, "unsigned int"),
                                   (64, "unsigned long long")) for e in ("be", "le")},
    "bool": "_Bool", "pid_t": "int", "uid_t": "unsigned int", "gid_t": "unsigned int",
    "size_t": "unsigned long", "ssize_t": "long", "time_t": "long", "off_t": "long",
    "loff_t": "long long", "umode_t": "unsigned short", "mode_t": "unsigned int",
    "uintptr_t": "unsigned long", "intptr_t": "long", "ptrdiff_t": "long",
    "__kernel_pid_t": "int", "__kernel_size_t": "unsigned long",
}


def load_header(path):
    """The types declared in the C header at path, as a Btf (see parse_header)."""
    return parse_header(files.read_regular_file(path).decode("utf-8", "replace"), str(path))


def parse_header(text, name="<header>"):
    """A Btf of every struct, union, enum and typedef text declares, and of the
    predefined typedefs (PREDEFINED). Find one with ``btf.find_one("event", "struct")``;
    HeaderError names the file and line of a declaration it cannot lay out."""
    return _Parser(preprocess(text, name), name).parse()


class _Type:
    """A parsed type: its BTF id, size and alignment in bytes (size None: incomplete,
    like a struct only declared, or void)."""
    __slots__ = ("id", "size", "align")

    def __init__(self, type_id, size, align):
        self.id, self.size, self.align = type_id, size, align


class _Parser:
    def __init__(self, toks, name):
        self.toks, self.at, self.name = toks, 0, name
        self.btf = Btf(byteorder="little")
        self.tags = {}          # ("struct"|"union"|"enum", name) -> _Type
        self.typedefs = {}      # name -> _Type
        self.enumerators = {}   # name -> value (usable in later constant expressions)
        self._base = {}
        self._index = None
        for tname, spelling in PREDEFINED.items():
            target = self._base_type(_words(spelling))
            self.typedefs[tname] = _Type(self.btf.add(T.Typedef(tname, target.id)),
                                         target.size, target.align)

    # -- tokens ----------------------------------------------------------------------

    def _peek(self, ahead=0):
        i = self.at + ahead
        return self.toks[i].text if i < len(self.toks) else None

    def _next(self):
        if self.at >= len(self.toks):
            raise HeaderError(f"{self.name}: the header ends inside a declaration")
        self.at += 1
        return self.toks[self.at - 1]

    def _expect(self, text):
        tok = self._next()
        if tok.text != text:
            self._fail(f"expected {text!r}, found {tok.text!r}", tok)
        return tok

    def _fail(self, what, tok=None):
        tok = tok or (self.toks[min(self.at, len(self.toks) - 1)] if self.toks else None)
        line = tok.line if tok is not None else 0
        raise HeaderError(f"{self.name}:{line}: {what}")

    def _skip_balanced(self):
        """Skip one (), [] or {} group starting at the current token."""
        depth = 0
        while True:
            text = self._next().text
            if text in "([{":
                depth += 1
            elif text in ")]}":
                depth -= 1
                if depth == 0:
                    return

    # -- file scope ------------------------------------------------------------------

    def parse(self):
        """The Btf. A declaration that cannot be laid out is skipped, its reason kept
        in ``btf.header_errors`` for the message of a lookup that misses it."""
        self.btf.header_errors = []
        while self.at < len(self.toks):
            start = self.at
            try:
                self._declaration()
            except _NotAType:
                self.at = start
                self._skip_declaration()
            except HeaderError as e:
                self.btf.header_errors.append(str(e))
                self.at = start
                self._skip_declaration()
        return self.btf

    def _skip_declaration(self):
        """Skip to the end of what is not a type declaration: a prototype, a variable,
        a function with its body."""
        while self.at < len(self.toks):
            text = self._peek()
            if text == ";":
                self.at += 1
                return
            if text == "{":
                self._skip_balanced()
                if self._peek() == ";":
                    self.at += 1
                return
            if text in ("(", "["):
                self._skip_balanced()
            else:
                self.at += 1

    def _declaration(self):
        if self._peek() == ";":
            self.at += 1
            return
        is_typedef = self._peek() == "typedef"
        if is_typedef:
            self.at += 1
        base, attrs = self._specifiers()
        if self._peek() == ";":
            self.at += 1
            return
        while True:
            name, t, _ = self._declarator(base)
            if self._peek() == "(" or not is_typedef:
                raise _NotAType()  # a prototype or a variable: not ours to keep
            self.typedefs[name] = _Type(self.btf.add(T.Typedef(name, t.id)), t.size,
                                        t.align)
            if self._peek() == ",":
                self.at += 1
                continue
            self._expect(";")
            return

    # -- specifiers ----------------------------------------------------------------

    def _specifiers(self):
        """The base type of a declaration and its attributes (packed, aligned)."""
        words, found, attrs = [], None, {}
        while True:
            text = self._peek()
            if text is None:
                break
            if text in _IGNORED:
                self.at += 1
            elif text in ("__attribute__", "__attribute"):
                self._attributes(attrs)
            elif text in ("struct", "union", "enum") and found is None and not words:
                found = self._tagged()
            elif text in _BASE_WORDS and found is None:
                words.append(text)
                self.at += 1
            elif text in self.typedefs and found is None and not words:
                found = self.typedefs[text]
                self.at += 1
            else:
                break
        if found is not None:
            return found, attrs
        if not words:
            raise _NotAType()
        return self._base_type(tuple(sorted(words))), attrs

    def _base_type(self, words):
        key = tuple(w for w in words if w != "signed") if words != ("char", "signed") \
            else words
        if "int" in key and len(key) > 1:
            key = tuple(w for w in key if w != "int")
        key = key or ("int",)
        if key in self._base:
            return self._base[key]
        if key == ("void",):
            t = _Type(0, None, 1)
        elif key in _BASE:
            name, size, enc = _BASE[key]
            t = _Type(self.btf.add(T.Int(name, size, enc, 0, size * 8)), size, size)
        elif key in _FLOATS:
            name, size = _FLOATS[key]
            t = _Type(self.btf.add(T.Float(name, size)), size, size)
        else:
            self._fail(f"{' '.join(words)!r} is not a C type")
        self._base[key] = t
        return t

    def _attributes(self, attrs):
        self.at += 1
        start = self.at
        self._skip_balanced()
        inner = self.toks[start:self.at]
        for i, tok in enumerate(inner):
            word = tok.text.strip("_")
            if word == "packed":
                attrs["packed"] = True
            elif word == "aligned":
                if i + 1 < len(inner) and inner[i + 1].text == "(":
                    end = next(j for j in range(i + 2, len(inner)) if inner[j].text == ")")
                    attrs["aligned"] = self._constant(inner[i + 2:end])
                else:
                    attrs["aligned"] = 16  # the largest alignment of the target

    def _tagged(self):
        kind = self._next().text
        tag = self._next().text if self._peek() not in ("{",) and \
            self._peek() not in ("__attribute__",) else ""
        attrs = {}
        while self._peek() in ("__attribute__", "__attribute"):
            self._attributes(attrs)
        if self._peek() != "{":
            if (kind, tag) not in self.tags:
                if kind == "enum":
                    self._fail(f"enum {tag} is used before its definition")
                self.tags[kind, tag] = _Type(self.btf.add(T.Fwd(tag, kind == "union")),
                                             None, 1)
            return self.tags[kind, tag]
        self.at += 1
        t = self._enum_body(tag) if kind == "enum" else self._record_body(kind, tag, attrs)
        if tag:
            old = self.tags.get((kind, tag))
            if old is not None and old.size is None:   # completes a forward declaration
                self.btf.replace(old.id, self.btf.type(t.id))
                old.size, old.align = t.size, t.align
            self.tags[kind, tag] = t
        return t

    def _enum_body(self, tag):
        values, nxt = [], 0
        while self._peek() != "}":
            name = self._next().text
            if self._peek() == "=":
                self.at += 1
                start = self.at
                while self._peek() not in (",", "}"):
                    self._skip_balanced() if self._peek() == "(" else self._next()
                nxt = self._constant(self.toks[start:self.at])
            values.append(T.EnumValue(name, nxt))
            self.enumerators[name] = nxt
            nxt += 1
            if self._peek() == ",":
                self.at += 1
        self.at += 1
        low = min((v.value for v in values), default=0)
        high = max((v.value for v in values), default=0)
        signed = low < 0
        size = 4 if (-(1 << 31) <= low and high < (1 << 31)) or (low >= 0 and high < (1 << 32)) \
            else 8
        cls = T.Enum if size == 4 else T.Enum64
        return _Type(self.btf.add(cls(tag, size, tuple(values), signed)), size, size)

    def _record_body(self, kind, tag, attrs):
        packed = attrs.get("packed", False)
        members = []   # (name, _Type, bitfield width or None, member attrs)
        while self._peek() != "}":
            tok = self.toks[self.at]
            try:
                base, mattrs = self._specifiers()
            except _NotAType:
                self._fail(f"{kind} {tag or '(anon)'}: {tok.text!r} is no type pybpf "
                           f"knows; typedef it in the header (e.g. typedef __u64 "
                           f"{tok.text};)", tok)
            if self._peek() == ";":      # an anonymous struct/union member
                self.at += 1
                members.append(("", base, None, mattrs))
                continue
            while True:
                name, t, width = self._declarator(base, member=True)
                while self._peek() in ("__attribute__", "__attribute"):
                    self._attributes(mattrs)
                members.append((name, t, width, dict(mattrs)))
                if self._peek() != ",":
                    break
                self.at += 1
            self._expect(";")
        self.at += 1
        while self._peek() in ("__attribute__", "__attribute"):
            self._attributes(attrs)
        packed = packed or attrs.get("packed", False)
        return self._layout(kind, tag, members, packed, attrs.get("aligned", 1))

    def _layout(self, kind, tag, members, packed, min_align):
        out, bit, align, size_bits = [], 0, min_align, 0
        for name, t, width, mattrs in members:
            if t.size is None:
                self._fail(f"member {name or '(anonymous)'} of {kind} {tag or '(anon)'} "
                           f"has an incomplete type (declared but not defined, or void)")
            a = 1 if packed and width is None else t.align
            a = max(a, mattrs.get("aligned", 1))
            if kind == "union":
                bit = 0
            if width is not None:
                unit = t.align * 8
                if width == 0:
                    bit = -(-bit // unit) * unit
                    continue
                if not packed and bit // unit != (bit + width - 1) // unit:
                    bit = -(-bit // unit) * unit
                out.append(T.Member(name, t.id, bit, width))
                bit += width
                if name and not packed:
                    align = max(align, t.align)
            else:
                bit = -(-bit // (a * 8)) * (a * 8)
                out.append(T.Member(name, t.id, bit, 0))
                bit += t.size * 8
                align = max(align, a)
            size_bits = max(size_bits, bit)
        size = -(-size_bits // 8)
        size = -(-size // align) * align
        cls = T.Union if kind == "union" else T.Struct
        return _Type(self.btf.add(cls(tag, size, tuple(out))), size, align)

    # -- declarators ---------------------------------------------------------------

    def _declarator(self, base, member=False):
        """(name, type, bitfield width or None) of one declarator after base."""
        t = base
        while self._peek() in ("*",) or self._peek() in _IGNORED:
            if self._next().text == "*":
                t = _Type(self.btf.add(T.Ptr("", t.id)), 8, 8)
        if self._peek() == "(":              # (*name)(...): a function pointer
            self.at += 1
            if self._peek() != "*":
                raise _NotAType()
            while self._peek() == "*":
                self.at += 1
            name = self._next().text
            dims = self._dimensions()
            self._expect(")")
            if self._peek() == "(":
                self._skip_balanced()
            t = _Type(self.btf.add(T.Ptr("", 0)), 8, 8)
            return name, self._array(t, dims), None
        if member and self._peek() == ":":   # an unnamed bitfield (padding)
            tok = self.toks[self.at]
            name = ""
        else:
            tok = self._next()
            if tok.kind != "ident":
                self._fail(f"expected a name, found {tok.text!r}", tok)
            name = tok.text
        if self._peek() == "(":
            raise _NotAType()                # a function
        t = self._array(t, self._dimensions())
        width = None
        if member and self._peek() == ":":
            self.at += 1
            start = self.at
            while self._peek() not in (",", ";", "__attribute__"):
                self._next()
            width = self._constant(self.toks[start:self.at])
            if not 0 <= width <= t.size * 8:
                self._fail(f"bitfield {name or '(unnamed)'} is {width} bits wide; its "
                           f"type has {t.size * 8}", tok)
        return name, t, width

    def _dimensions(self):
        dims = []
        while self._peek() == "[":
            self.at += 1
            start = self.at
            while self._peek() != "]":
                self._skip_balanced() if self._peek() in "([" else self._next()
            dims.append(self._constant(self.toks[start:self.at]) if self.at > start else 0)
            self.at += 1
        return dims

    def _array(self, t, dims):
        for n in reversed(dims):
            if t.size is None:
                self._fail("an array of an incomplete type")
            if n < 0:
                self._fail(f"an array of {n} elements")
            t = _Type(self.btf.add(T.Array("", t.id, self._index_type(), n)), t.size * n,
                      t.align)
        return t

    def _index_type(self):
        if self._index is None:
            self._index = self.btf.add(T.Int("__ARRAY_SIZE_TYPE__", 4, 0, 0, 32))
        return self._index

    # -- constants -----------------------------------------------------------------

    def _constant(self, toks):
        where = f"{self.name}:{toks[0].line if toks else 0}"
        return Expr(toks, where, self.enumerators, _Sizeof(self)).value()


class _Sizeof:
    """``sizeof(TYPE)``/``sizeof x`` and casts (``(uid_t)-1``) inside constant
    expressions, with the types parsed so far."""

    def __init__(self, parser):
        self.parser = parser

    def is_type_word(self, word):
        p = self.parser
        return word in _BASE_WORDS or word in p.typedefs or word in (
            "struct", "union", "enum") or word in _IGNORED

    def __call__(self, expr, cast):
        """Parse ``(TYPE)`` (and, for a cast, what follows) from expr's tokens."""
        p = self.parser
        saved = (p.toks, p.at)
        if not cast and expr._peek() != "(":
            raise HeaderError(f"{expr.where}: sizeof of an expression is not computed; "
                              f"write sizeof(TYPE)")
        expr._next()  # "("
        p.toks, p.at = expr.tokens, expr.at
        try:
            t, _ = p._specifiers()
            while p._peek() == "*":
                p.at += 1
                t = _Type(0, 8, 8)
            dims = p._dimensions()
            if dims:
                t = _Type(t.id, t.size * _product(dims), t.align)
            expr.at = p.at
        finally:
            p.toks, p.at = saved
        if expr._next().text != ")":
            expr._fail()
        if cast:
            value = expr._unary()
            bits = 8 * t.size
            value &= (1 << bits) - 1
            target = p.btf.type(p.btf.resolve(t.id))
            signed = isinstance(target, T.Int) and target.signed
            return value - (1 << bits) if signed and value >> (bits - 1) else value
        if t.size is None:
            raise HeaderError(f"{expr.where}: sizeof an incomplete type")
        return t.size


def _product(dims):
    n = 1
    for d in dims:
        n *= d
    return n


class _NotAType(HeaderError):  # noqa: N818 - the parser's control flow
    """Raised inside the parser when a file-scope declaration declares no type."""
