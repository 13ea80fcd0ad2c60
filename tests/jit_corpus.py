"""Functions of the jit's subset, one or more per construct, shared by the unit tests
(host JIT against Python) and the kernel tests (TEST_RUN against both).

CONSTRUCTS maps each construct the subset documents (pybpf/jit/subset.py) to the
functions that use it, so a construct without a function here is a test failure.
"""
LIMIT = 1000
NEG = -17
BUCKETS = 16


def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def mul(a, b):
    return a * b


def floordiv(a, b):
    return a // b


def mod(a, b):
    return a % b


def bitand(a, b):
    return a & b


def bitor(a, b):
    return a | b


def bitxor(a, b):
    return a ^ b


def lshift(a, b):
    return a << (b & 63)


def rshift(a, b):
    return a >> (b & 63)


def div_by_constants(x):
    return x // 7 + x % 7 * 1000 + x // -3 * 10 + x % -3


def unary(x):
    return -x + (+x) * 3 + ~x


def negation(x):
    return not x


def compare(a, b):
    return (a < b) + 2 * (a <= b) + 4 * (a > b) + 8 * (a >= b) + 16 * (a == b) + \
        32 * (a != b)


def chained(a, b):
    return 0 < a < b <= LIMIT


def boolean(a, b):
    return (a and b) + 3 * (a or b) + 5 * (not a or b and a)


def conditional_expr(x):
    return x * 2 if x > 0 else -x if x < NEG else 7


def branches(x):
    """if/elif/else, early returns, a local."""
    y = x % 10
    if y == 0:
        return 100
    elif y < 0:
        y = -y
    elif y > 5:
        pass
    else:
        return y * 3
    return y


def falls_off_the_end(x):
    if x > 0:
        return 1


def returns_bool(x):
    if x == 5:
        return True
    if x + True == 7:      # True and False are 1 and 0, as in Python
        return False
    return x % 3 == 0 and x > NEG


def locals_and_aug(a, b):
    t = a
    t += b
    t -= 3
    t *= 5
    t //= 7
    t %= 1001
    t &= 0xFFFF
    t |= 0x10000
    t ^= b
    t <<= 2
    t >>= 1
    return t


def loop_sum(x):
    s = 0
    for i in range(10):
        s += x * i
    return s


def loop_forms(x):
    s = 0
    for i in range(3, 9):
        s += i * x
    for j in range(20, 2, -3):
        s -= j
    for k in range(-5, 5, 2):
        s ^= k
    return s


def loop_control(x):
    s = 0
    for i in range(32):
        if i == x % 32:
            break
        if i % 3 == 0:
            continue
        s += i
    return s


def nested_loops(x):
    s = 0
    for i in range(4):
        for j in range(4):
            s += (x >> (i * 4 + j)) & 1
    return s


def early_return_in_loop(x):
    for i in range(64):
        if (x >> i) & 1:
            return i
    return -1


def constants(x):
    return x % BUCKETS + LIMIT + NEG


def builtins(a, b):
    return abs(a) + min(a, b) * 3 + max(a, b) * 5


def _digit_sum(x):
    s = 0
    x = abs(x)
    for _ in range(19):
        s += x % 10
        x //= 10
    return s


def _parity(x):
    return _digit_sum(x) % 2


def calls(x):
    """A call chain: calls() -> _parity() -> _digit_sum()."""
    return _parity(x) * 100 + _digit_sum(x)


def checksum_ok(x):
    s = 0
    for i in range(4):
        s += (x >> (8 * i)) & 0xFF
    return s % 7 == 0


def step_sums(s, x):
    s.n += 1
    s.total += x
    s.squares += x * x


def step_histogram(s, x):
    s.hist[x % BUCKETS] += 1
    if x < 0:
        s.negative += 1


def step_negative_index(s, x):
    s.last[-1] = x
    s.last[x % 4] += 1


def step_out_of_range(s, x):
    s.hist[x] += 1


STEPS = {
    step_sums: {"n": None, "total": None, "squares": None},
    step_histogram: {"hist": BUCKETS, "negative": None},
    step_negative_index: {"last": 4},
    step_out_of_range: {"hist": 4},
}

FUNCTIONS = [add, sub, mul, floordiv, mod, bitand, bitor, bitxor, lshift, rshift,
             div_by_constants, unary, negation, compare, chained, boolean,
             conditional_expr, branches, falls_off_the_end, returns_bool, locals_and_aug,
             loop_sum, loop_forms, loop_control, nested_loops, early_return_in_loop,
             constants, builtins, calls, checksum_ok]

CONSTRUCTS = {
    "+": [add], "-": [sub], "*": [mul], "//": [floordiv, div_by_constants],
    "%": [mod, div_by_constants], "&": [bitand], "|": [bitor], "^": [bitxor],
    "<<": [lshift], ">>": [rshift], "unary - + ~": [unary], "not": [negation],
    "comparisons": [compare], "chained comparisons": [chained],
    "and/or": [boolean], "a if c else b": [conditional_expr],
    "if/elif/else": [branches], "pass": [branches], "docstring": [branches, calls],
    "return": [branches, early_return_in_loop], "falling off the end": [falls_off_the_end],
    "bool results": [returns_bool], "locals": [locals_and_aug, branches],
    "augmented assignment": [locals_and_aug],
    "for range(n)": [loop_sum], "for range(a, b[, step])": [loop_forms],
    "break/continue": [loop_control], "nested loops": [nested_loops],
    "module constants": [constants, chained], "abs/min/max": [builtins],
    "calls within the subset": [calls],
    "reduce state scalars": [step_sums], "reduce state arrays": [step_histogram],
    "negative indexes": [step_negative_index], "index out of range": [step_out_of_range],
}
