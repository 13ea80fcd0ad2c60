"""The microbenchmarks' programs, written with pybpf.asm so that each does exactly
what its measurement says and nothing else (no compiler decides the loop shape).

All are socket filters: BPF_PROG_TEST_RUN runs them ``repeat`` times in the kernel
and reports the mean time of one run, on the calling CPU, with no hook, event or
syscall around them (kprobe and raw-tracepoint programs cannot be repeated by
TEST_RUN). The helpers measured are in every program type's base set on 5.13+:
bpf_probe_read_kernel/user (with CAP_PERFMON), bpf_strtol.
"""
import ctypes

from .. import asm
from ..asm import R0, R1, R2, R3, R4, R6, R7, R8, R9, R10, alu64, call, exit, jmp, \
    ld_imm64, ld_map_value, ldx, mov64, stx
from ..kernel.constants import plain
from ..maps import Map
from ..programs import Program

PAGE = 4096
PACKET = bytes(64)          # TEST_RUN needs a packet of at least an Ethernet header
LOG_STATS = 4               # BPF_LOG_STATS: the verifier's time and counts, no trace
NUMBER_FIELD = 8            # bytes per number in the strtol page: "1234567 "
PAGE_TEXT = b"1234567 " * (PAGE // NUMBER_FIELD)   # the page every helper reads


def helper(name):
    return plain("BPF_FUNC_" + name)


def code(insns):
    """The program's bytes, assembled ahead so that timing a load times the kernel."""
    return asm.encode(asm.assemble(insns))


def load(insns, log_level=0):
    """Load a program (bytes from code(), or instructions)."""
    if not isinstance(insns, bytes):
        insns = code(insns)
    return Program.load("socket_filter", insns, log_level=log_level)


def run_ns(prog, repeat):
    """Mean nanoseconds of one run of prog, over repeat runs in the kernel."""
    return prog.test_run(PACKET, repeat=repeat).duration_ns


class Pages:
    """Two array maps of one element: src, the page of numbers the helpers read from
    (kernel memory), followed by a page of zeros so that no read can run past the
    map's value; dst, the buffer they read into. user is the same page in this
    process's memory, for bpf_probe_read_user."""

    def __init__(self, data):
        self.src = Map.create("array", "I", 2 * PAGE, 1)
        self.dst = Map.create("array", "I", PAGE, 1)
        self.src[0] = data + bytes(PAGE)
        self._user = ctypes.create_string_buffer(data, PAGE)
        self.user_address = ctypes.addressof(self._user)

    def close(self):
        self.src.close()
        self.dst.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def empty():
    """The run's own cost, subtracted from every other program's."""
    return load([mov64(R0, 0), exit()])


def read_page(pages, size, user=False):
    """bpf_probe_read_kernel (or _user) of one page, size bytes per call."""
    src = [ld_imm64(R7, pages.user_address)] if user else [ld_map_value(R7, pages.src.fd)]
    name = "probe_read_user" if user else "probe_read_kernel"
    return load(src + [ld_map_value(R8, pages.dst.fd), mov64(R6, 0), "loop",
                       mov64(R1, R8), mov64(R2, size), mov64(R3, R7), alu64("add", R3, R6),
                       call(helper(name)), alu64("add", R6, size),
                       jmp("lt", R6, PAGE, "loop"), mov64(R0, 0), exit()])


def strtol_page(pages):
    """bpf_strtol on each NUMBER_FIELD-byte field of the kernel page."""
    return load([ld_map_value(R7, pages.src.fd), mov64(R6, 0), "loop",
                 mov64(R1, R7), alu64("add", R1, R6), mov64(R2, NUMBER_FIELD),
                 mov64(R3, 10), mov64(R4, R10), alu64("add", R4, -8),
                 call(helper("strtol")), alu64("add", R6, NUMBER_FIELD),
                 jmp("lt", R6, PAGE, "loop"), mov64(R0, 0), exit()])


def counted_loop(iterations):
    """The bytes of a loop the verifier walks iterations times: a helper call and
    three instructions per turn (the thesis's programs repeated operations with helper
    calls; here the verifier does the repeating, so the size is exact)."""
    return code([mov64(R6, 0), mov64(R7, 0), "loop", call(helper("get_prandom_u32")),
                 alu64("add", R7, R0), alu64("add", R6, 1),
                 jmp("lt", R6, iterations, "loop"), mov64(R0, 0), exit()])


def straight_line(length):
    """The bytes of length instructions without a branch: as many for the JIT as for
    the verifier."""
    return code([mov64(R0, 0)] + [alu64("add", R0, 1)] * (length - 2) + [exit()])


def _page_work():
    """One page's work: bpf_probe_read_kernel in 256-byte pieces (16 calls), as the
    thesis's stages did, from R7 (the kernel page) into R8. Clobbers R1-R5 and R6."""
    return [mov64(R6, 0), "page", mov64(R1, R8), mov64(R2, 256), mov64(R3, R7),
            alu64("add", R3, R6), call(helper("probe_read_kernel")), alu64("add", R6, 256),
            jmp("lt", R6, PAGE, "page")]


def _count_page(counter):
    """counter[0] += 1, the new count left in R2."""
    return [ld_map_value(R1, counter.fd), ldx(8, R2, R1), alu64("add", R2, 1),
            stx(8, R1, R2)]


def _zero(counter):
    return [ld_map_value(R1, counter.fd), mov64(R2, 0), stx(8, R1, R2)]


def pages_in_one(pages, counter, count, work=True):
    """count pages of work in one program (a loop on R9 the verifier can bound);
    without work, only the counting, so that what the tail calls add stands alone."""
    return load([ld_map_value(R7, pages.src.fd), ld_map_value(R8, pages.dst.fd),
                 mov64(R9, 0)] + _zero(counter) + ["next"] + (_page_work() if work else [])
                + _count_page(counter)
                + [alu64("add", R9, 1), jmp("lt", R9, count, "next"), mov64(R0, 0), exit()])


def pages_by_tail_calls(pages, counter, chain, count, work=True):
    """(entry, stage): entry zeroes the counter and tail-calls the stage in chain[0];
    the stage does one page of work and tail-calls itself until count pages are done:
    count tail calls in all, the same work and counting as pages_in_one."""
    tail = [ldx(8, R1, R10, -8), asm.ld_map_fd(R2, chain.fd), mov64(R3, 0),
            call(helper("tail_call"))]
    keep_ctx = [stx(8, R10, R1, -8)]
    entry = load(keep_ctx + _zero(counter) + tail + [mov64(R0, 0), exit()])
    stage = load(keep_ctx + [ld_map_value(R7, pages.src.fd), ld_map_value(R8, pages.dst.fd)]
                 + (_page_work() if work else []) + _count_page(counter)
                 + [jmp("ge", R2, count, "done")]
                 + tail + ["done", mov64(R0, 0), exit()])
    return entry, stage
