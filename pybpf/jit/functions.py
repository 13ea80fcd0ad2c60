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

from llvmlite import ir

from .. import asm
from .. import elf as E
from ..kernel.constants import HelperId
from . import kernelir
from .irgen import I32, I64, STATUS_INDEX, Module
from .kernelir import PTR
from .maps import Map
from .meaning import IndexOutOfRange, Interpreter
from .subset import INT64_MAX, INT64_MIN, JitError, check
from .target import HostCode, bpf_object

RUNNER = "pybpf_run"           # the syscall program of every compiled object
STATE_MAP = "pybpf_state"      # a step's state while the runner runs it


def state_slots(fields):
    return sum(f.length or 1 for f in fields.values())


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
        maps = {}
        if step:
            maps[STATE_MAP] = Map("array", max_entries=1)
            maps[STATE_MAP].value_words = state_slots(checked.state)
        module = Module(f"jit_{self.name}", checked.filename, maps)
        entry = module.add(checked, step=step)
        self._runner(module, entry)
        self.ir = module.finish()
        self.bpf = bpf_object(module.ir)
        self.host = HostCode(module.ir)

    # -- the syscall runner ---------------------------------------------------------

    def _runner(self, module, entry):
        """int pybpf_run(u64 *ctx): ctx[0..n) are the arguments (for a step: ctx[0] is
        x and ctx[1..] the state), ctx[n] gets the result."""
        fn = ir.Function(module.ir, ir.FunctionType(I32, [PTR]), name=RUNNER)
        fn.section = "syscall"
        fn.attributes.add("nounwind")
        line = self.checked.node.lineno + self.checked.first_line
        sp = module.subprogram(RUNNER, line, [("ctx", module.di_ptr)])
        fn.set_metadata("dbg", sp)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        b.debug_metadata = module.ir.add_debug_info("DILocation", {
            "line": line, "column": 1, "scope": sp})
        ctx = b.bitcast(fn.args[0], I64.as_pointer())
        if self.step:
            # The step indexes its state with computed indexes, which the verifier
            # allows into a map value but not into the context: the state goes
            # through the one entry of an array map.
            key = b.alloca(I32)
            b.store(ir.Constant(I32, 0), key)
            value = b.call(kernelir.helper(HelperId.map_lookup_elem, PTR, PTR, PTR),
                           [b.bitcast(module.maps[STATE_MAP], PTR), b.bitcast(key, PTR)])
            with b.if_then(b.icmp_unsigned("==", value, ir.Constant(PTR, None))):
                b.ret(ir.Constant(I32, 1))
            state = b.bitcast(value, I64.as_pointer())
            slots = state_slots(self.checked.state)

            def copy(src, src_at, dst, dst_at):
                for i in range(slots):
                    b.store(b.load(b.gep(src, [ir.Constant(I64, src_at + i)])),
                            b.gep(dst, [ir.Constant(I64, dst_at + i)]))
            copy(ctx, 2, state, 0)
            b.store(b.call(entry, [state, b.load(ctx)]), b.gep(ctx, [ir.Constant(I64, 1)]))
            copy(state, 0, ctx, 2)
        else:
            args = [b.load(b.gep(ctx, [ir.Constant(I64, i)])) for i in range(self.nparams)]
            b.store(b.call(entry, args), b.gep(ctx, [ir.Constant(I64, self.nparams)]))
        b.ret(ir.Constant(I32, 0))
        module.add_license()

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
        if self.step:
            return self.test_runs([args], states=[state])[0]
        return self.test_runs([args])[0]

    def test_runs(self, samples, states=None):
        """test_run for each argument tuple of samples (for a step: (x,) tuples, with
        the state before each in states), loading the object once."""
        from ..loader import BpfObject
        out = []
        with BpfObject.open(self.bpf, name=f"jit_{self.name}") as obj:
            obj.load(programs=[RUNNER])
            self.load_warnings = obj.warnings
            runner = obj.programs[RUNNER]
            for i, args in enumerate(samples):
                if self.step:
                    ctx = struct.pack(f"<{2 + len(states[i])}q", args[0], 0, *states[i])
                else:
                    ctx = struct.pack(f"<{self.nparams + 1}q", *args, 0)
                words = struct.unpack(f"<{len(ctx) // 8}q", runner.test_run(ctx=ctx).ctx)
                out.append((words[1], list(words[2:])) if self.step else words[self.nparams])
        return out

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
        namespace = define(source)
        checked = check(name or fn, state=step_state, source=source, env=namespace)
        python = namespace[checked.name]
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


def define(source):
    """The namespace the source string defines (its functions, constants and maps),
    by running it: it is the user's own code, as an imported module would be."""
    import builtins
    import textwrap
    namespace = {}
    try:
        code = builtins.compile(textwrap.dedent(source), "<string>", "exec")
    except SyntaxError as e:
        raise JitError(f"<string>:{e.lineno}: {e.msg}") from None
    exec(code, namespace)  # noqa: S102
    return namespace


__all__ = ["compile", "CompiledFunction", "default_samples", "RUNNER", "STATUS_INDEX"]
