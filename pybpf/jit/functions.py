"""Compiling one Python function: to a BPF object, to host code, and checking that
both mean what the Python function means.

    f = jit.compile(fn)            # checks the subset, compiles, runs the host check
    f(3, 4)                        # the host code
    f.test_run(3, 4)               # the BPF code, in the kernel (BPF_PROG_TEST_RUN)
    f.instructions()               # the BPF instructions, to embed (the pipeline does)

The BPF object holds the function (global, in ``.text``, every callee inlined) and a
``syscall`` program that runs it on arguments taken from its context, which is how
:meth:`CompiledFunction.test_run` calls it and how a verifier refusal names the Python
line: the object's line info comes from the function's source.
"""
import random
import struct
import types

from llvmlite import ir

from .. import asm
from .. import elf as E
from .irgen import I8, I32, I64, STATUS_INDEX, Module
from .meaning import IndexOutOfRange, Interpreter
from .subset import INT64_MAX, INT64_MIN, JitError, check
from .target import HostCode, bpf_object

RUNNER = "pybpf_run"           # the syscall program of every compiled object


def _python_value(result):
    """A Python function's result as the compiled one returns it (None is 0)."""
    if result is None:
        return 0
    if isinstance(result, bool):
        return int(result)
    if isinstance(result, int):
        return result
    raise JitError(f"the Python function returned {type(result).__name__}, not an integer")


class CompiledFunction:
    """A checked, compiled function: bpf (the ELF object bytes), host code, and the
    checked source (subset.Function)."""

    def __init__(self, fn, checked, step=False):
        self.python, self.checked, self.step = fn, checked, step
        self.name = checked.name
        self.nparams = len(checked.params)
        module = Module(f"jit_{self.name}", checked.filename)
        entry = module.add(checked, step=step)
        self._runner(module, entry)
        self.ir = module.ir
        self.bpf = bpf_object(module.ir)
        self.host = HostCode(module.ir)

    # -- the syscall runner ---------------------------------------------------------

    def _runner(self, module, entry):
        """int pybpf_run(u64 *ctx): ctx[0..n) are the arguments (for a step: ctx[0] is
        x and ctx[1..] the state), ctx[n] gets the result."""
        fn = ir.Function(module.ir, ir.FunctionType(I32, [I8.as_pointer()]), name=RUNNER)
        fn.section = "syscall"
        fn.attributes.add("nounwind")
        line = self.checked.node.lineno + self.checked.first_line
        sp = module.subprogram(RUNNER, line, [module.di_ptr])
        fn.set_metadata("dbg", sp)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        b.debug_metadata = module.ir.add_debug_info("DILocation", {
            "line": line, "column": 1, "scope": sp})
        ctx = b.bitcast(fn.args[0], I64.as_pointer())
        if self.step:
            state = b.gep(ctx, [ir.Constant(I64, 2)])
            result = b.call(entry, [state, b.load(ctx)])
            b.store(result, b.gep(ctx, [ir.Constant(I64, 1)]))
        else:
            args = [b.load(b.gep(ctx, [ir.Constant(I64, i)])) for i in range(self.nparams)]
            b.store(b.call(entry, args), b.gep(ctx, [ir.Constant(I64, self.nparams)]))
        b.ret(ir.Constant(I32, 0))
        gv = ir.GlobalVariable(module.ir, ir.ArrayType(I8, 4), name="_license")
        gv.initializer = ir.Constant(ir.ArrayType(I8, 4), bytearray(b"GPL\0"))
        gv.section = "license"

    # -- running it -----------------------------------------------------------------

    def __call__(self, *args):
        if self.step:
            raise JitError(f"{self.name} is a reduce step: use step_host(state, x)")
        if len(args) != self.nparams:
            raise JitError(f"{self.name}() takes {self.nparams} arguments, got {len(args)}")
        return self.host.function(self.name, self.nparams)(*args)

    def step_host(self, state, x):
        """Run a reduce step on the host: state is a list of slot values, updated in
        place; returns the step's status (0, or 1 for an index out of range)."""
        import ctypes
        arr = (ctypes.c_int64 * len(state))(*state)
        status = self.host.function(self.name, 2, state=True)(arr, x)
        state[:] = list(arr)
        return status

    def test_run(self, *args, state=None):
        """Run the BPF code in the kernel (a syscall program under BPF_PROG_TEST_RUN):
        the function's result, or for a step (status, new state)."""
        from ..loader import BpfObject
        if self.step:
            ctx = struct.pack(f"<{2 + len(state)}q", args[0], 0, *state)
        else:
            ctx = struct.pack(f"<{self.nparams + 1}q", *args, 0)
        with BpfObject.open(self.bpf, name=f"jit_{self.name}") as obj:
            obj.load(programs=[RUNNER])
            run = obj.programs[RUNNER].test_run(ctx=ctx)
        words = struct.unpack(f"<{len(ctx) // 8}q", run.ctx)
        if self.step:
            return words[1], list(words[2:])
        return words[self.nparams]

    def instructions(self):
        """The function's BPF instructions (asm.Insn list), self-contained (no calls,
        no map or other relocations), ready to be a subprogram of another program."""
        f = E.ElfFile(self.bpf)
        text = f.section(".text")
        sym = f.symbol(self.name)
        if text is None or sym is None or sym.shndx != text.index:
            raise JitError(f"the object has no function {self.name} in .text")
        if f.relocations().get(text.index):
            raise JitError(f"{self.name} needs relocations (calls or maps): it cannot be "
                           f"embedded in another program")
        return asm.decode(text.data[sym.value:sym.value + sym.size])

    # -- checking it ----------------------------------------------------------------

    def check_on_host(self, samples):
        """Compare the host code with the subset's meaning (meaning.Interpreter) on
        samples (argument tuples): JitError on the first disagreement, which is a
        miscompile. Where the meaning and the Python function itself disagree (the
        function leaves 64 bits, or divides by zero, for that input), the input is
        kept in ``python_differs``. Returns how many samples were compared."""
        meaning = Interpreter(self.checked)
        self.python_differs = []
        for args in samples:
            want = meaning.call(self.name, args)
            got = self(*args)
            if got != want:
                raise JitError(f"the compiled {self.name}{tuple(args)} gives {got}, the "
                               f"subset's meaning is {want}: a miscompile; please report "
                               f"it with the function")
            try:
                python = _python_value(self.python(*args))
            except (ZeroDivisionError, ValueError, OverflowError):
                python = None
            if python != want:
                self.python_differs.append(tuple(args))
        return len(samples)

    def check_step_on_host(self, init, xs):
        """The same for a reduce step, over a run of inputs from the state init."""
        meaning = Interpreter(self.checked)
        host, ref = list(init), list(init)
        for x in xs:
            status = self.step_host(host, x)
            try:
                meaning.call(self.name, [x], state=ref)
                want = 0
            except IndexOutOfRange:
                want = STATUS_INDEX
            if (status, host) != (want, ref):
                raise JitError(f"the compiled step {self.name} disagrees with the subset's "
                               f"meaning at x={x}: a miscompile; please report it")


def default_samples(nparams, count=200, seed=0):
    """Argument tuples: the edges of 64 bits, small numbers, and random ones."""
    rng = random.Random(seed)
    edges = [0, 1, -1, 2, -2, 7, -7, 10, 100, -100, 12345, INT64_MAX, INT64_MIN,
             INT64_MAX - 1, INT64_MIN + 1, 1 << 32, -(1 << 32), 1 << 62]
    out = [tuple(rng.choice(edges) for _ in range(nparams)) for _ in range(count // 2)]
    out += [tuple(rng.randint(-10 ** 6, 10 ** 6) for _ in range(nparams))
            for _ in range(count // 2)]
    return out


def compile(fn, *, source=None, name=None, samples=None, step_state=None):
    """Compile fn (a Python function, or with source= the function name in the source
    string) to BPF and host code, and check the host code against Python on samples
    (default: default_samples). step_state: the field shapes of a reduce step's state
    ({name: None or length}); the function is then step(state, x)."""
    if source is not None:
        checked = check(name or fn, state=step_state, source=source)
        python = _define(source, checked.name)
    else:
        checked = check(fn, state=step_state)
        python = fn
    compiled = CompiledFunction(python, checked, step=step_state is not None)
    if step_state is None:
        compiled.check_on_host(samples if samples is not None
                               else default_samples(compiled.nparams))
    else:
        slots = sum(n or 1 for n in step_state.values())
        compiled.check_step_on_host([0] * slots, [x for (x,) in (
            samples if samples is not None else default_samples(1))])
    return compiled


def _define(source, name):
    namespace = {}
    exec(compile_source(source), namespace)  # noqa: S102 - the user's own source
    return namespace[name]


def compile_source(source):
    import builtins
    import textwrap
    return builtins.compile(textwrap.dedent(source), "<string>", "exec")


def state_object(shapes, slots):
    """A Python object with the state's fields over a list of slot values, for running
    a step in Python (attributes for scalars, lists for arrays)."""
    ns = types.SimpleNamespace()
    at = 0
    for name, length in shapes.items():
        setattr(ns, name, slots[at] if length is None else list(slots[at:at + length]))
        at += length or 1
    return ns


def state_slots(shapes, ns):
    out = []
    for name, length in shapes.items():
        v = getattr(ns, name)
        out.extend([v] if length is None else v)
    return out


__all__ = ["compile", "CompiledFunction", "default_samples", "RUNNER", "STATUS_INDEX"]
