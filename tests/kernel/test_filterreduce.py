"""The filter-reduce pipeline end to end on the running kernel: files read through
every backend and parser this kernel has give exactly what the user-space reference
computes from the same bytes.

Where the tests run:
- the host (6.18, no kprobes): the syscall backend;
- the stock VM tier (Debian's 6.1, tests marked ``vm``): the syscall backend;
- the patched VM tier (6.1 built from kernel-config/, tests marked ``patched``): the
  copyout backend, with and without the override, and copy_to_iter; the syscall
  backend is left to the two tiers above.
Files in the tiers' tests are small, since the reference is Python and the VM's CPU
is emulated; the large cases run on the host only. Pipelines are loaded once per
backend and shared by the tests (FilterReduce(pipeline=...)).
"""
import collections
import ctypes
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from pybpf.errors import PipelineError
from pybpf.filterreduce import FilterReduce, Pipeline, reference, verdicts
from pybpf.filterreduce.layout import INT64_MAX, INT64_MIN
from pybpf.filterreduce.reader import MAX_EVENT_BYTES
from pybpf.kernel import system

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT)
VERDICTS = verdicts()
USABLE = [name for name, v in VERDICTS.items() if v.usable]
PATCHED = VERDICTS["copyout"].usable      # a kernel built from kernel-config/
CAN_SKIP = VERDICTS["copyout"].can_override
PARSERS = ("native", "strtol")
RULES = b"12 -7 --3 4-5 x9y 00012 -0"
NOT_HERE = ("the syscall backend's own tests run on the host and in the stock VM tier "
            "(Debian's 6.1)")

Mode = collections.namedtuple("Mode", "name backend override")
if PATCHED:
    MODES = [Mode("copyout", "copyout", False)] + \
        ([Mode("copyout-override", "copyout", True)] if CAN_SKIP else []) + \
        [Mode(b, b, False) for b in USABLE if b not in ("copyout", "syscall")]
else:
    MODES = [Mode(b, b, False) for b in USABLE]


def tiers(test):
    """Run test on the host and in both VM tiers."""
    return pytest.mark.vm(pytest.mark.patched(test))


@pytest.fixture(scope="module")
def pipelines():
    """backend name -> a Pipeline, loaded on first use, closed after the module."""
    loaded = {}

    def get(backend):
        if backend not in loaded:
            loaded[backend] = Pipeline.create(backend)[0]
        return loaded[backend]
    yield get
    for p in loaded.values():
        p.close()


class Setup:
    """A backend's pipeline and whether tenants skip the copy."""

    def __init__(self, mode, pipeline):
        self.mode, self.pipeline, self.override = mode, pipeline, mode.override

    def reader(self, flt=None, **kwargs):
        return FilterReduce(flt, override=self.override, pipeline=self.pipeline, **kwargs)


@pytest.fixture(scope="module", params=MODES, ids=[m.name for m in MODES])
def setup(request, pipelines):
    return Setup(request.param, pipelines(request.param.backend))


@pytest.fixture(scope="module", params=PARSERS)
def parser(request):
    return request.param


def through(setup, parser, path, flt=None, chunk=65536):
    with setup.reader(flt, parser=parser, chunk=chunk) as fr:
        res = fr.read(path)
    if setup.override:                 # every copy of the tenant's was skipped
        assert res.overridden == res.events > 0 or res.bytes == 0
    return res


def check(setup, parser, tmp_path, data, flt=None, chunk=65536, name="data.txt"):
    """Read data through the pipeline; it must equal the reference computation."""
    path = tmp_path / name
    path.write_bytes(data)
    got = through(setup, parser, path, flt, chunk)
    want = reference.read_file(path, flt)
    same = ("bytes", "numbers_seen", "numbers_kept", "numbers_out_of_range", "sum", "min",
            "max", "count", "avg", "filter")
    assert {k: getattr(got, k) for k in same} == {k: getattr(want, k) for k in same}
    return got


def random_numbers(rng, size, separators=(b"\n",), negatives=0.3, digits=(1, 7)):
    out, n = [], 0
    while n < size:
        num = str(rng.randint(0, 10 ** rng.randint(*digits))).encode()
        if rng.random() < negatives:
            num = b"-" + num
        piece = num + rng.choice(separators)
        out.append(piece)
        n += len(piece)
    return b"".join(out)[:size]


# ---- the rules ---------------------------------------------------------------------------

@tiers
def test_the_number_rules(setup, parser, tmp_path):
    got = check(setup, parser, tmp_path, RULES)
    assert (got.numbers_seen, got.sum, got.min, got.max) == (8, 22, -7, 12)
    assert got.backend == setup.mode.backend and got.parser == parser


@tiers
@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 100_000])
def test_small_file_sizes(setup, parser, tmp_path, size):
    rng = random.Random(size)
    got = check(setup, parser, tmp_path, random_numbers(rng, size), "x % 3 != 1")
    assert got.bytes == size


@pytest.mark.parametrize("size", [3 << 20, 24 << 20])
def test_large_files(setup, parser, tmp_path, size):
    rng = random.Random(size)
    got = check(setup, parser, tmp_path, random_numbers(rng, size), "x % 3 != 1")
    assert got.bytes == size


@tiers
def test_every_byte_separates(setup, parser, tmp_path):
    """Each of the 246 non-digit byte values between numbers, '-' among them."""
    rng = random.Random(7)
    others = [bytes([b]) for b in range(256) if not 48 <= b <= 57]
    data = b"".join(str(rng.randint(0, 999)).encode() + sep + sep * rng.randint(0, 1)
                    for sep in others * 8)
    got = check(setup, parser, tmp_path, data)
    assert got.numbers_seen > 246 * 8 - 10


@tiers
def test_crlf_negatives_and_no_trailing_separator(setup, parser, tmp_path):
    check(setup, parser, tmp_path, b"-1\r\n22\r\n-333\r\n4444", "x < 100")
    check(setup, parser, tmp_path, b"--5---6-7-", None)


@tiers
@pytest.mark.parametrize("chunk", [1, 7, 4095, 4097, 40000, MAX_EVENT_BYTES])
def test_numbers_across_every_copy_boundary(setup, parser, tmp_path, chunk):
    """Read sizes that are not multiples of 4096, and events of several pieces
    (40000 bytes is three of FR_PIECE): numbers of every length straddle the edges."""
    rng = random.Random(chunk)
    size = 20_000 if chunk < 100 else 200_000
    data = random_numbers(rng, size, (b" ", b"-", b"\n", b"x"), digits=(0, 18))
    check(setup, parser, tmp_path, data, "x % 2 == 0 or x < -1000", chunk=chunk)


@tiers
def test_a_number_at_every_offset_of_a_page(setup, parser, tmp_path):
    """A 12-digit number starting at each of the offsets 4080..4096 of a piece."""
    for pad in range(4080, 4097, 4):
        data = b" " * pad + b"-123456789012 5" + b" " * 10
        check(setup, parser, tmp_path, data, chunk=4096, name=f"pad{pad}.txt")


# ---- values that do not fit ----------------------------------------------------------------

@tiers
def test_out_of_range_numbers_are_counted_never_folded_in(setup, parser, tmp_path):
    data = " ".join([str(INT64_MAX), str(INT64_MIN), str(INT64_MAX + 1), str(INT64_MIN - 1),
                     "9" * 19, "9" * 20, "1" * 70, "0" * 80 + "42", "-" + "0" * 64 + "9",
                     "18446744073709551616", "5"]).encode()
    got = check(setup, parser, tmp_path, data)
    assert got.numbers_out_of_range == 6 and got.numbers_kept == 5   # 9 * 19 > 2**63


@tiers
def test_a_sum_beyond_64_bits_is_exact(setup, parser, tmp_path):
    data = (str(INT64_MAX).encode() + b"\n") * 1000
    got = check(setup, parser, tmp_path, data)
    assert got.sum == 1000 * INT64_MAX and got.avg == float(INT64_MAX)


# ---- reading loops ---------------------------------------------------------------------------

@tiers
def test_a_programs_own_read_loop(setup, parser, tmp_path):
    """A tenant buffer the caller owns, read into with readinto, then reset for a
    second file."""
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"own{i}.txt")
        paths[-1].write_bytes(random_numbers(random.Random(i), 100_000))
    buf = bytearray(10_000)
    with setup.reader("x > 1000", parser=parser) as fr, fr.tenant(buf) as t:
        for path in paths:
            with open(path, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
            got = t.result(expected_bytes=path.stat().st_size)
            assert got.same_numbers(reference.read_file(path, "x > 1000"))
            t.reset()


def _pread_into(fd, buf, offset):
    """pread64(2) into buf itself (os.pread returns a new bytes object)."""
    view = (ctypes.c_char * len(buf)).from_buffer(buf)
    try:
        n = _LIBC.pread(fd, view, ctypes.c_size_t(len(buf)), ctypes.c_long(offset))
    finally:
        del view
    if n < 0:
        raise OSError(ctypes.get_errno(), "pread")
    return n


_LIBC = ctypes.CDLL(None, use_errno=True)
_READERS = {"pread64": _pread_into,
            "readv": lambda fd, buf, off: os.readv(fd, [buf]),
            "preadv": lambda fd, buf, off: os.preadv(fd, [buf], off)}


@tiers
@pytest.mark.skipif("syscall" not in USABLE or PATCHED, reason=NOT_HERE)
@pytest.mark.parametrize("call", ["pread64", "readv", "preadv"])
def test_syscall_backend_follows_pread_and_single_buffer_vectors(tmp_path, call):
    path = tmp_path / "p.txt"
    data = random_numbers(random.Random(2), 200_000)
    path.write_bytes(data)
    buf = bytearray(8192)
    with Pipeline.create("syscall")[0] as p, FilterReduce(pipeline=p) as fr, \
            fr.tenant(buf) as t:
        fd = os.open(path, os.O_RDONLY)
        try:
            offset = 0
            while True:
                n = _READERS[call](fd, buf, offset)
                if not n:
                    break
                offset += n
        finally:
            os.close(fd)
        assert t.result(expected_bytes=len(data)).same_numbers(reference.read_file(path))


@tiers
@pytest.mark.skipif("syscall" not in USABLE or PATCHED, reason=NOT_HERE)
def test_syscall_backend_says_it_does_not_follow_several_buffers(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes(b"1 2 3 " * 1000)
    buf, other = bytearray(100), bytearray(100)
    with Pipeline.create("syscall")[0] as p, FilterReduce(pipeline=p) as fr, \
            fr.tenant(buf) as t:
        fd = os.open(path, os.O_RDONLY)
        os.readv(fd, [buf, other])
        os.close(fd)
        with pytest.raises(PipelineError, match="several buffers"):
            t.result()


# ---- several processes, one pinned pipeline ----------------------------------------------

READER = os.path.join(ROOT, "tests", "kernel", "fr_reader.py")


@pytest.fixture(scope="module")
def pinned():
    """A pipeline pinned on bpffs by the command line (attach copyout --pin), shared by
    the tests of several processes, and removed by `detach` after them."""
    if not system.is_bpffs(system.BPFFS_DEFAULT):
        system.mount("bpf", system.BPFFS_DEFAULT, "bpf")
    directory = os.path.join(system.BPFFS_DEFAULT, f"pybpf-test-fr-{os.getpid()}")
    run = cli("attach", "copyout", "--pin", directory, "--filter", "x > 0", "--quiet")
    assert run.returncode == 0, run.stderr
    yield directory
    run = cli("detach", directory)
    assert run.returncode == 0, run.stderr
    assert not os.path.exists(directory)


def cli(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "pybpf", *argv], capture_output=True,
                          text=True, env=ENV, stdin=subprocess.DEVNULL, **kwargs)


def reader(directory, path, flt, parser="native", pause=0.0, override=False):
    return subprocess.Popen([sys.executable, READER, directory, str(path), flt, parser,
                             str(pause), "1" if override else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)


@tiers
def test_eight_processes_each_get_their_own_result(pinned, tmp_path):
    filters = ["x >= 500000", "x % 3 == 0 and x < 0", "not (10 <= x <= 200000)", "-",
               "x % 7 == 1", "x < -900000", "x != 0", "x % 2 == 0 or x > 990000"]
    jobs = []
    for i, flt in enumerate(filters):
        path = tmp_path / f"f{i}.txt"
        path.write_bytes(random_numbers(random.Random(i), 150_000 + i * 4099,
                                        digits=(1, 6)))
        # Where copies can be skipped, half the tenants do: both kinds at once.
        jobs.append((path, flt, reader(pinned, path, flt, PARSERS[i % 2],
                                       override=CAN_SKIP and i % 4 < 2)))
    for path, flt, proc in jobs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        got = json.loads(out.splitlines()[-1])
        want = reference.read_file(path, None if flt == "-" else flt).to_dict()
        for key in ("bytes", "numbers_seen", "numbers_kept", "numbers_out_of_range", "sum",
                    "min", "max"):
            assert got[key] == want[key], (flt, key)
    with Pipeline.join(pinned) as p:
        assert len(p.tenants) == 0                   # every reader unregistered
        owners = {slot: e.owner_tgid for slot, e in p.maps["fr_slots"].items()}
        assert all(owner == 0 for owner in owners.values()), owners   # slots released


@tiers
def test_an_unregistered_reader_gets_its_bytes_unchanged(pinned, tmp_path):
    """... also while the tenant's own copies are skipped, where they can be."""
    path = tmp_path / "shared.txt"
    data = random_numbers(random.Random(5), 1_000_000)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    tenant = reader(pinned, path, "x > 5", pause=0.001, override=CAN_SKIP)
    seen = []
    while tenant.poll() is None:
        with open(path, "rb") as f:
            seen.append(hashlib.sha256(f.read()).hexdigest())
    assert tenant.returncode == 0, tenant.stderr.read()
    assert seen and set(seen) == {digest}


@tiers
def test_a_tenant_killed_mid_read_is_reclaimed(pinned, tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(random_numbers(random.Random(6), 2_000_000))
    proc = reader(pinned, path, "x > 1", pause=0.01)
    ready = json.loads(proc.stdout.readline())
    time.sleep(0.3)
    with Pipeline.join(pinned) as p:
        mine = [k for k in p.tenants.tenants.keys() if k.tgid == proc.pid]
        assert len(mine) == 1                        # registered and reading
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert ready["slot"] in dict(p.maps["fr_slots"].items())
        assert p.reclaim() == 2                      # its tenant and its filter slot
        assert not [k for k in p.tenants.tenants.keys() if k.tgid == proc.pid]
        assert ready["slot"] not in dict(p.maps["fr_slots"].items())
        assert ready["slot"] not in dict(p.maps["fr_stages"].items())


@tiers
def test_a_recycled_pid_does_not_inherit_a_tenant(setup, tmp_path):
    """An entry whose start-time window is not this process's (as when a pid is
    reused) is ignored by the kernel, also right after a read into the same buffer
    by a tenant that was this process's (the copyout backend once kept that read's
    arming, and took the next copy to the same addresses for the dead tenant's)."""
    path = tmp_path / "r.txt"
    path.write_bytes(b"1 2 3\n" * 1000)
    buf = bytearray(4096)
    pipeline = setup.pipeline
    with setup.reader() as fr, fr.tenant(buf) as t:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
        assert t.result().count == 3000
        t.reset()
        value = pipeline.tenants.counters(t.key)
        value.start_lo, value.start_hi = value.start_lo - 10 ** 9, value.start_lo - 1
        pipeline.tenants.tenants[t.key] = value       # as a dead process left it
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
        with pytest.raises(PipelineError, match="saw none"):
            t.result()
        assert pipeline.reclaim() >= 1
        with pytest.raises(KeyError):
            pipeline.tenants.counters(t.key)


@tiers
def test_replacing_a_filter_replaces_only_that_stage(setup, tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(random_numbers(random.Random(8), 200_000))
    with setup.reader("x > 0") as a, setup.reader("x < 0") as b:
        before = b.read(path)
        a.set_filter("x % 5 == 0")
        assert a.read(path).same_numbers(reference.read_file(path, "x % 5 == 0"))
        assert b.read(path).same_numbers(before)


@tiers
def test_a_c_program_takes_part_through_the_pinned_maps(pinned, tmp_path):
    """docs/filterreduce.md's protocol, followed by a C program with raw bpf(2)."""
    exe = tmp_path / "fr_client"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-I", os.path.join(ROOT, "programs"),
                    "-o", str(exe), os.path.join(ROOT, "tests", "progs", "filterreduce",
                                                 "fr_client.c")], check=True)
    path = tmp_path / "c.txt"
    path.write_bytes(random_numbers(random.Random(9), 100_000))
    run = subprocess.run([str(exe), pinned, str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    want = reference.read_file(path, "x > 0")     # the pinned pipeline's filter
    assert (got["truncated"], got["errors"], got["read"]) == (0, 0, want.bytes)
    assert (got["bytes"], got["numbers_seen"], got["numbers_kept"], got["min"],
            got["max"]) == (want.bytes, want.numbers_seen, want.numbers_kept, want.min,
                            want.max)
    assert (got["sum_hi"] << 64) + got["sum_lo"] == want.sum


@pytest.mark.patched
@pytest.mark.skipif(not CAN_SKIP, reason="needs bpf_override_return on copyout: the "
                    "kernel built from kernel-config/; runs in the patched VM tier")
def test_override_leaves_the_tenants_buffer_untouched(pipelines, tmp_path):
    """With the override, read() returns its counts and the result is exact, but no
    byte of the file reaches the tenant's buffer: every copy was skipped."""
    path = tmp_path / "o.txt"
    data = random_numbers(random.Random(10), 300_000)
    path.write_bytes(data)
    marker = 0xA5
    buf = bytearray([marker]) * 65536
    with FilterReduce("x % 2 == 1", override=True, pipeline=pipelines("copyout")) as fr, \
            fr.tenant(buf) as t, open(path, "rb", buffering=0) as f:
        total = 0
        while True:
            n = f.readinto(buf)
            if not n:
                break
            total += n
        got = t.result(expected_bytes=total)
    assert total == len(data) and buf.count(marker) == len(buf)
    assert got.same_numbers(reference.read_file(path, "x % 2 == 1"))
    assert got.overridden == got.events


@pytest.mark.patched
@pytest.mark.skipif(not PATCHED, reason="needs kprobes on copyout: the kernel built from "
                    "kernel-config/; runs in the patched VM tier")
def test_files_on_ext4_go_through_the_kprobe_backends(pipelines, tmp_path):
    """ext4's page cache reaches _copy_to_iter and copyout as tmpfs's does."""
    image, mnt = tmp_path / "ext4.img", tmp_path / "ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image), "16M"], check=True)
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        path = mnt / "n.txt"
        path.write_bytes(random_numbers(random.Random(11), 1_000_000))
        subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], check=True)
        want = reference.read_file(path, "x > 100")
        for backend in ("copyout", "copy_to_iter"):
            with FilterReduce("x > 100", pipeline=pipelines(backend)) as fr:
                assert fr.read(path).same_numbers(want), backend
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
