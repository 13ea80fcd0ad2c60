"""The C preprocessor as far as a tool's header needs it, for :mod:`pybpf.btf.cdecl`.

Object-like ``#define``s are expanded (they size arrays: ``char comm[TASK_COMM_LEN]``),
``#if``/``#ifdef``/``#ifndef``/``#elif``/``#else``/``#endif`` obeyed on them, and
integer constant expressions computed with C's precedence and division. What a
header's types do not need (``#include``, ``#pragma``, function-like macros) is
dropped rather than refused: such headers also hold user-space helpers.
"""
import re

from ..errors import InputError

_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)
  | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<ident>[A-Za-z_]\w*)
  | (?P<punct><<|>>|<=|>=|==|!=|&&|\|\||->|\.\.\.|\#\#|[-+*/%&|^~!<>?:;,.()\[\]{}=\#])
""", re.VERBOSE | re.DOTALL)


class HeaderError(InputError):
    """A header declaration pybpf cannot read as BTF; the message gives file and line
    and says what to change (or what to write instead)."""


# ---- preprocessing ---------------------------------------------------------------------

class Tok:
    __slots__ = ("kind", "text", "line")

    def __init__(self, kind, text, line):
        self.kind, self.text, self.line = kind, text, line

    def __repr__(self):
        return f"{self.text!r}@{self.line}"


def tokens(text, line, name):
    out, at = [], 0
    while at < len(text):
        m = _TOKEN.match(text, at)
        if not m:
            raise HeaderError(f"{name}:{line}: cannot read {text[at:at + 20]!r}")
        if m.lastgroup != "space":
            out.append(Tok(m.lastgroup, m.group(), line))
        line += m.group().count("\n")
        at = m.end()
    return out


def preprocess(text, name):
    """Tokens of text after the preprocessor directives pybpf understands: object-like
    #defines expanded, #if/#ifdef/#ifndef/#elif/#else/#endif obeyed, the rest
    (#include, #pragma, function-like macros) dropped."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"), text, flags=re.S)
    macros, out, stack = {}, [], []   # stack: [taking, taken-any] per open #if
    for number, line in _logical_lines(text):
        stripped = line.strip()
        active = all(taking for taking, _ in stack)
        if stripped.startswith("#"):
            _directive(stripped[1:].strip(), macros, stack, active, f"{name}:{number}")
            continue
        if active:
            out.extend(tokens(line, number, name))
    return expand(out, macros)


def _logical_lines(text):
    """(first line number, line) with backslash-continued lines joined."""
    pending, first = [], 0
    for number, line in enumerate(text.split("\n"), 1):
        if not pending:
            first = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        yield first, " ".join(pending + [line])
        pending = []
    if pending:
        yield first, " ".join(pending)


def _directive(body, macros, stack, active, where):
    word, rest = (re.split(r"\s+", body, maxsplit=1) + [""])[:2]
    rest = rest.strip()
    if word in ("ifdef", "ifndef"):
        hit = rest.split()[0] in macros if rest else False
        taking = hit if word == "ifdef" else not hit
        stack.append([active and taking, taking or not active])
    elif word == "if":
        taking = active and _condition(rest, macros, where)
        stack.append([taking, taking or not active])
    elif word == "elif":
        _check_open(stack, word, where)
        taking = not stack[-1][1] and _condition(rest, macros, where)
        stack[-1] = [taking, stack[-1][1] or taking]
    elif word == "else":
        _check_open(stack, word, where)
        stack[-1] = [not stack[-1][1], True]
    elif word == "endif":
        _check_open(stack, word, where)
        stack.pop()
    elif not active:
        return
    elif word == "define":
        m = re.match(r"([A-Za-z_]\w*)(\(?)(.*)", rest, re.S)
        if m and not m.group(2):  # function-like macros: not types, dropped
            macros[m.group(1)] = tokens(m.group(3), 0, where)
        elif m:
            macros.pop(m.group(1), None)
    elif word == "undef":
        macros.pop(rest, None)


def _check_open(stack, word, where):
    if not stack:
        raise HeaderError(f"{where}: #{word} without #if")


def _condition(text, macros, where):
    text = re.sub(r"defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)",
                  lambda m: "1" if (m.group(1) or m.group(2)) in macros else "0", text)
    found = expand(tokens(text, 0, where), macros)
    found = [Tok("num", "0", 0) if t.kind == "ident" else t for t in found]
    return bool(Expr(found, where).value())


def expand(tokens, macros, hiding=frozenset()):
    out = []
    for tok in tokens:
        if tok.kind == "ident" and tok.text in macros and tok.text not in hiding:
            body = [Tok(t.kind, t.text, tok.line) for t in macros[tok.text]]
            out.extend(expand(body, macros, hiding | {tok.text}))
        else:
            out.append(tok)
    return out


class Expr:
    """An integer constant expression (C precedence, C's integer division)."""
    _BINARY = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="),
               ("<", ">", "<=", ">="), ("<<", ">>"), ("+", "-"), ("*", "/", "%")]

    def __init__(self, tokens, where, names=None, sizeof=None):
        self.tokens, self.at, self.where = tokens, 0, where
        self.names, self.sizeof = names or {}, sizeof

    def value(self):
        v = self._ternary()
        if self.at != len(self.tokens):
            self._fail()
        return v

    def _peek(self):
        return self.tokens[self.at].text if self.at < len(self.tokens) else None

    def _next(self):
        if self.at >= len(self.tokens):
            self._fail()
        self.at += 1
        return self.tokens[self.at - 1]

    def _fail(self):
        text = " ".join(t.text for t in self.tokens)
        raise HeaderError(f"{self.where}: {text!r} is not an integer constant pybpf can "
                          f"compute (numbers, #define'd numbers, enum values and "
                          f"+ - * / % << >> & | ^ ~ ( ) only)")

    def _ternary(self):
        cond = self._binary(0)
        if self._peek() != "?":
            return cond
        self._next()
        yes = self._ternary()
        if self._next().text != ":":
            self._fail()
        no = self._ternary()
        return yes if cond else no

    def _binary(self, level):
        if level == len(self._BINARY):
            return self._unary()
        left = self._binary(level + 1)
        while self._peek() in self._BINARY[level]:
            op = self._next().text
            right = self._binary(level + 1)
            left = _apply(op, left, right, self._fail)
        return left

    def _unary(self):
        tok = self._next()
        if tok.text in ("-", "+", "~", "!"):
            v = self._unary()
            return {"-": -v, "+": v, "~": ~v, "!": int(not v)}[tok.text]
        if tok.text == "(":
            if self.sizeof is not None and self._is_type_start():
                self.at -= 1
                return self.sizeof(self, cast=True)
            v = self._ternary()
            if self._next().text != ")":
                self._fail()
            return v
        if tok.text == "sizeof" and self.sizeof is not None:
            return self.sizeof(self, cast=False)
        if tok.kind == "num":
            digits = tok.text.rstrip("uUlL")
            if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX":
                return int(digits, 8)  # C's octal, which Python spells 0o
            return int(digits, 0)
        if tok.kind == "ident" and tok.text in self.names:
            return self.names[tok.text]
        if tok.kind == "str" and tok.text.startswith("'") and len(tok.text) == 3:
            return ord(tok.text[1])
        self._fail()

    def _is_type_start(self):
        word = self._peek()
        return word is not None and self.sizeof.is_type_word(word)


def _apply(op, a, b, fail):
    if op in ("/", "%"):
        if b == 0:
            fail()
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        return q if op == "/" else a - q * b
    return {"||": lambda: int(bool(a or b)), "&&": lambda: int(bool(a and b)),
            "|": lambda: a | b, "^": lambda: a ^ b, "&": lambda: a & b,
            "==": lambda: int(a == b), "!=": lambda: int(a != b), "<": lambda: int(a < b),
            ">": lambda: int(a > b), "<=": lambda: int(a <= b), ">=": lambda: int(a >= b),
            "<<": lambda: a << b, ">>": lambda: a >> b, "+": lambda: a + b,
            "-": lambda: a - b, "*": lambda: a * b}[op]()
