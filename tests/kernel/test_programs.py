"""Programs built with pybpf.asm, verified and run by the kernel through TEST_RUN.

The programs compute results that depend on their input (packet length, packet bytes,
a map counter), so a loader that passes the wrong instructions, map fds, data or
context cannot pass by accident.
"""
import errno
import gc
import os

import pytest

import pybpf
import pybpf.kernel.bpf as kbpf
from pybpf import (BPFError, ClosedError, HelperId, Map, Program, ProgType, VerifierError,
                   asm)
from pybpf.asm import R0, R1, R2, R3, R4, R6, R10

XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3
MIN_LEN = 64


def _xdp_data_bounds():
    """r2 = ctx->data, r3 = ctx->data_end (struct xdp_md: two u32 at offsets 0, 4)."""
    return [asm.ldx(4, R2, R1, 0), asm.ldx(4, R3, R1, 4)]


def _load_length_filter():
    """XDP_DROP for packets shorter than MIN_LEN bytes, else XDP_PASS."""
    return Program.load(ProgType.XDP, asm.assemble(_xdp_data_bounds() + [
        asm.alu64("add", R2, MIN_LEN),
        asm.jmp("gt", R2, R3, "drop"),
        asm.mov64(R0, XDP_PASS), asm.exit(),
        "drop",
        asm.mov64(R0, XDP_DROP), asm.exit(),
    ]), name="len_filter")


def _const(ret, name=""):
    return Program.load("xdp", [asm.mov64(R0, ret), asm.exit()], name=name)


@pytest.mark.parametrize("length, verdict", [
    (14, XDP_DROP), (MIN_LEN - 1, XDP_DROP), (MIN_LEN, XDP_PASS), (1500, XDP_PASS)])
def test_xdp_verdict_depends_on_packet_length(length, verdict):
    with _load_length_filter() as prog:
        run = prog.test_run((bytes(range(256)) * 6)[:length])
        assert run.retval == verdict
        assert len(run.data) == length


def test_xdp_writes_into_packet():
    with Program.load("xdp", asm.assemble(_xdp_data_bounds() + [
        asm.mov64(R4, R2), asm.alu64("add", R4, 2),
        asm.jmp("gt", R4, R3, "out"),
        asm.st(1, R2, 1, 0xAB),  # packet[1] = 0xAB
        "out",
        asm.mov64(R0, XDP_TX), asm.exit(),
    ])) as prog:
        packet = bytes(range(60))
        run = prog.test_run(packet)
        assert run.retval == XDP_TX
        assert run.data == packet[:1] + b"\xab" + packet[2:]


def test_socket_filter_with_ld_abs():
    """Keep IPv4 packets (first network byte 0x45), drop the rest. TEST_RUN strips the
    Ethernet header before a socket filter runs, so ld_abs offset 0 is frame[14]."""
    with Program.load("socket_filter", asm.assemble([
        asm.mov64(R6, R1),  # ld_abs reads the skb in r6
        asm.ld_abs(1, 0),
        asm.jmp("eq", R0, 0x45, "keep"),
        asm.mov64(R0, 0), asm.exit(),
        "keep",
        asm.mov64(R0, 1000), asm.exit(),
    ])) as prog:
        frame = bytearray(64)
        frame[12:15] = b"\x08\x00\x45"
        assert prog.test_run(bytes(frame)).retval == 1000
        frame[12:15] = b"\x86\xdd\x60"  # IPv6
        assert prog.test_run(bytes(frame)).retval == 0


def _load_counter(counter):
    """Atomically add 1 to counter[0] (an array of one u64) on every run."""
    return Program.load("xdp", asm.assemble([
        asm.st(4, R10, -4, 0),  # key = 0 on the stack
        asm.ld_map_fd(R1, counter.fd),
        asm.mov64(R2, R10), asm.alu64("add", R2, -4),
        asm.call(HelperId.map_lookup_elem),
        asm.jmp("eq", R0, 0, "out"),
        asm.mov64(R1, 1),
        asm.atomic("add", 8, R0, R1),
        "out",
        asm.mov64(R0, XDP_PASS), asm.exit(),
    ]), name="counter")


def test_program_counts_into_map():
    with Map.create("array", value="Q", max_entries=1) as counter, \
            _load_counter(counter) as prog:
        run = prog.test_run(bytes(64), repeat=10)
        assert run.retval == XDP_PASS
        assert counter[0] == 10
        prog.test_run(bytes(64), repeat=5)
        assert counter[0] == 15
        assert counter.id in prog.info().map_ids


def test_program_keeps_its_map_alive():
    counter = Map.create("array", value="Q", max_entries=1)
    map_id = counter.id
    with _load_counter(counter) as prog:
        counter.close()  # the program still holds the map
        prog.test_run(bytes(64), repeat=3)
        with Map.from_id(map_id, value="Q") as again:
            assert again[0] == 3


def test_program_info():
    with Map.create("array", value="Q", max_entries=1) as counter, \
            _load_counter(counter) as prog:
        info = prog.info()
        assert info.type == ProgType.XDP
        assert info.name == "counter"
        assert info.id == prog.id > 0
        assert info.xlated_len > 0 and info.xlated_len % 8 == 0
        assert info.jited_len > 0
        assert info.verified_insns > 0
        assert info.map_ids == (counter.id,)
        assert len(info.tag) == 16 and int(info.tag, 16) >= 0
        assert info.gpl_compatible is True
        assert info.created_by_uid == os.geteuid()
        assert info.to_dict()["type"] == "xdp"
        xlated = prog.xlated()
        assert len(xlated) == info.xlated_len
        assert asm.decode(xlated)[-1] == asm.exit()


def test_license_reaches_the_kernel():
    with Program.load("xdp", [asm.mov64(R0, 2), asm.exit()], license="Proprietary") as p:
        assert p.info().gpl_compatible is False


def test_run_stats_only_while_enabled():
    with _const(XDP_PASS) as prog:
        prog.test_run(bytes(64), repeat=4)
        before = prog.info()
        assert (before.run_cnt, before.run_time_ns) == (0, 0)
        with pybpf.enable_stats():
            prog.test_run(bytes(64), repeat=4)
            during = prog.info()
        assert during.run_cnt == 4
        assert during.run_time_ns > 0
        prog.test_run(bytes(64), repeat=4)
        after = prog.info()
        assert after.run_cnt == during.run_cnt  # counting stopped with the stats fd


def test_pin_program_and_reopen(bpffs):
    path = os.path.join(bpffs, "len_filter")
    with _load_length_filter() as prog:
        prog.pin(path)
        try:
            with Program.from_pin(path) as again:
                assert again.id == prog.id
                assert again.name == "len_filter" and again.type == ProgType.XDP
                assert again.test_run(bytes(MIN_LEN)).retval == XDP_PASS
            with Program.from_id(prog.id) as by_id:
                assert by_id.test_run(bytes(20)).retval == XDP_DROP
        finally:
            Program.unpin(path)
        assert not os.path.exists(path)


def test_verifier_error_uninitialised_register():
    with pytest.raises(VerifierError) as exc:
        Program.load("xdp", [asm.mov64(R0, R2), asm.exit()])
    err = exc.value
    assert isinstance(err, BPFError) and err.errno == errno.EACCES
    assert err.cmd == "BPF_PROG_LOAD"
    assert "R2 !read_ok" in err.log
    text = str(err)
    assert "R2 !read_ok" in text and "verifier log" in text


def test_verifier_error_out_of_bounds_packet_access():
    with pytest.raises(VerifierError) as exc:
        Program.load("xdp", _xdp_data_bounds() + [
            asm.ldx(1, R0, R2, 0),  # no check against data_end
            asm.exit()])
    assert "invalid access to packet" in exc.value.log


def test_verifier_error_shows_only_the_last_lines():
    """A long log stays whole in .log but str() shows its tail."""
    body = [asm.mov64(R0, 0)] * 40
    with pytest.raises(VerifierError) as exc:
        Program.load("xdp", body + [asm.mov64(R0, R2), asm.exit()], log_level=2)
    err = exc.value
    lines = err.log.rstrip("\n").splitlines()
    assert len(lines) > VerifierError.TAIL_LINES
    text = str(err)
    assert lines[-1] in text and "R2 !read_ok" in text
    assert lines[0] not in text


def test_short_log_buffer_grows_until_the_whole_log_fits(monkeypatch):
    sizes = []
    real_bpf = kbpf.bpf_errno

    def spy(cmd, attr):
        if cmd == pybpf.kernel.constants.Cmd.PROG_LOAD:
            sizes.append(attr.log_size)
        return real_bpf(cmd, attr)
    monkeypatch.setattr(kbpf, "bpf_errno", spy)
    with pytest.raises(VerifierError) as exc:
        Program.load("xdp", [asm.mov64(R0, R2), asm.exit()], log_size=128)
    log = exc.value.log
    assert len(log) > 128
    assert log.startswith("0: R1=ctx() R10=fp0")  # the head the short buffer lost
    assert "R2 !read_ok" in log and "processed 1 insns" in log
    assert sizes[0] == 0  # first attempt without a log
    assert sizes[1] == 128 and sizes[-1] > 128  # then the kernel's ENOSPC retry


def test_verifier_log_on_success():
    with Program.load("xdp", [asm.mov64(R0, 2), asm.exit()], log_level=1) as prog:
        assert "processed 2 insns" in prog.verifier_log


CLOSED_PROG_OPS = {
    "test_run": lambda p: p.test_run(bytes(64)), "info": lambda p: p.info(),
    "xlated": lambda p: p.xlated(), "id": lambda p: p.id, "fileno": lambda p: p.fileno(),
    "pin": lambda p: p.pin("/sys/fs/bpf/never"), "enter": lambda p: p.__enter__(),
}


@pytest.mark.parametrize("op", sorted(CLOSED_PROG_OPS))
def test_closed_program_raises_closed_error(op):
    prog = _const(2)
    prog.close()
    prog.close()  # twice is fine
    with pytest.raises(ClosedError):
        CLOSED_PROG_OPS[op](prog)


def test_program_context_manager_and_unclosed_warning():
    with _const(2) as prog:
        assert not prog.closed
    assert prog.closed
    forgotten = _const(2, name="forgotten")
    with pytest.warns(ResourceWarning, match="forgotten"):
        del forgotten
        gc.collect()


def test_load_by_name_and_number():
    for spec in ("xdp", "XDP", int(ProgType.XDP), ProgType.XDP):
        with Program.load(spec, [asm.mov64(R0, 2), asm.exit()]) as prog:
            assert prog.info().type == ProgType.XDP


def test_test_run_error_is_bpf_error():
    """The kernel refuses XDP input shorter than an Ethernet header."""
    with _const(2) as prog:
        with pytest.raises(BPFError) as exc:
            prog.test_run(b"\x00" * 4)
        assert exc.value.errno == errno.EINVAL and exc.value.cmd == "BPF_PROG_TEST_RUN"
