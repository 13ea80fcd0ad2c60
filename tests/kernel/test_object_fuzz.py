"""Fuzz the whole loader: a damaged object either loads or raises ``pybpf.Error``.

tests/unit/test_elf_fuzz.py and test_btf_fuzz.py fuzz the ELF and BTF readers alone;
this runs ``BpfObject.open`` and ``load`` (maps created, programs verified by the
kernel) over mutations of clang-built objects: random bytes, ELF header fields,
section header fields, section bodies, the .BTF/.BTF.ext and relocation sections,
symbols, and truncation. Anything else escaping (IndexError, struct.error, a
MemoryError, a hang, a leaked fd) is a bug. The objects that found bugs are kept as
explicit regression cases (REGRESSIONS).

The mutants run in a child process whose address space is capped (a runaway
allocation fails there, not on the machine), each under an alarm: a mutant that
takes longer than HANG_SECONDS is reported as hung (a hang detector, generous on
purpose: no timing is asserted). PYBPF_FUZZ_OBJECTS=N runs N mutants per seed object
instead of the default, PYBPF_FUZZ_SEED=S another sequence.
"""
import gc
import json
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import traceback

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROGS = os.path.join(HERE, "..", "progs")
SEEDS = {  # name -> source, below tests/progs
    "globals": "loader/globals.bpf.c", "legacy": "loader/legacy.bpf.c",
    "mapinmap": "loader/mapinmap.bpf.c", "tailcalls": "loader/tailcalls.bpf.c",
    "externs": "loader/externs.bpf.c", "xdp_count": "run/xdp_count.bpf.c",
    "cgroup_storage": "run/cgroup_storage.bpf.c", "core_kernel": "core/core_kernel.bpf.c",
}
PER_SEED = int(os.environ.get("PYBPF_FUZZ_OBJECTS", "60"))
SEED = int(os.environ.get("PYBPF_FUZZ_SEED", "7"))
HANG_SECONDS = 20
CAP = 4 << 30  # bytes of address space for the child
LOAD_BUDGET = 64 << 20  # bytes of kernel map memory a mutant may ask for (see attempt)

INTERESTING = [0, 1, 4, 7, 8, 0x10, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 40, 1 << 57, (1 << 63) - 1,
               (1 << 64) - 1]
# e_ident is 16 bytes; then (offset, width) of e_type .. e_shstrndx
EHDR_FIELDS = [(16, 2), (18, 2), (20, 4), (24, 8), (32, 8), (40, 8), (48, 4), (52, 2),
               (54, 2), (56, 2), (58, 2), (60, 2), (62, 2)]
# (offset, width) of sh_name .. sh_entsize in a section header
SHDR_FIELDS = [(0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4), (44, 4),
               (48, 8), (56, 8)]
# (offset, width) of st_name, st_info, st_other, st_shndx, st_value, st_size
SYM_FIELDS = [(0, 4), (4, 1), (5, 1), (6, 2), (8, 8), (16, 8)]


# ---- mutations (pure functions of the seed object and a random.Random) ----------------

def _sections(data):
    """[(name, sh_type, header offset, data offset, size)] of an intact object."""
    from pybpf.elf import ElfFile
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    return [(s.name, s.type, shoff + s.index * 64, s.offset, s.size)
            for s in ElfFile(data).sections]


def _put(data, offset, width, value):
    if offset + width <= len(data):
        data[offset:offset + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, "little")


def _value(rng, width):
    return rng.choice(INTERESTING) if rng.random() < 0.7 else rng.getrandbits(8 * width)


def mutate(seed, rng):
    """One mutant of seed and a short description of what was done."""
    data, sections = bytearray(seed), _sections(seed)
    kind = rng.choice(["bytes", "ehdr", "shdr", "body", "btf", "rel", "sym", "truncate"])
    if kind == "truncate":
        cut = rng.randrange(len(data))
        return bytes(data[:cut]), f"truncate at {cut}"
    if kind == "bytes":
        done = []
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data))
            data[at] = rng.randrange(256)
            done.append(at)
        return bytes(data), f"bytes at {done}"
    if kind == "ehdr":
        offset, width = rng.choice(EHDR_FIELDS)
        value = _value(rng, width)
        _put(data, offset, width, value)
        return bytes(data), f"ELF header +{offset} = {value:#x}"
    targets = {"btf": (".BTF", ".BTF.ext"), "rel": None, "body": None}.get(kind)
    if kind == "rel":
        pool = [s for s in sections if s[1] in (4, 9)]  # SHT_RELA, SHT_REL
    elif kind == "sym":
        pool = [s for s in sections if s[1] == 2]  # SHT_SYMTAB
    elif targets:
        pool = [s for s in sections if s[0] in targets]
    else:
        pool = sections[1:]
    if not pool:
        return bytes(data), "nothing to mutate"
    name, _, header, start, size = rng.choice(pool)
    if kind == "shdr":
        offset, width = rng.choice(SHDR_FIELDS)
        value = _value(rng, width)
        _put(data, header + offset, width, value)
        return bytes(data), f"section {name!r} header +{offset} = {value:#x}"
    if kind == "sym" and size >= 24:
        entry = rng.randrange(size // 24)
        offset, width = rng.choice(SYM_FIELDS)
        value = _value(rng, width)
        _put(data, start + entry * 24 + offset, width, value)
        return bytes(data), f"symbol {entry} +{offset} = {value:#x}"
    if kind == "rel" and size >= 16:
        entry, offset = rng.randrange(size // 16), rng.choice([0, 8, 12])
        value = _value(rng, 4 if offset == 12 else 8)
        _put(data, start + entry * 16 + offset, 4 if offset == 12 else 8, value)
        return bytes(data), f"{name} entry {entry} +{offset} = {value:#x}"
    if size and start + size <= len(data):
        done = []
        for _ in range(rng.randint(1, 6)):
            at = start + rng.randrange(size)
            if kind == "btf" and rng.random() < 0.5:  # a whole u32 of a header or record
                at -= (at - start) % 4
                value = _value(rng, 4)
                _put(data, at, 4, value)
                done.append(f"+{at - start}={value:#x}")
            else:
                data[at] = rng.randrange(256)
                done.append(f"+{at - start}")
        return bytes(data), f"{name} body {done}"
    return bytes(data), "nothing to mutate"


def _renamed_symbol(seed, old, new):
    from pybpf.elf import ElfFile
    strtab = ElfFile(seed).section(".strtab")
    at = seed.index(b"\0" + old + b"\0", strtab.offset, strtab.offset + strtab.size) + 1
    return seed[:at] + new + seed[at + len(new):]


def _with_section_size(seed, name, size):
    data = bytearray(seed)
    header = next(h for n, _, h, _, _ in _sections(seed) if n == name)
    _put(data, header + 32, 8, size)
    return bytes(data)


def _with_symbol_field(seed, symbol, offset, width, value):
    from pybpf.elf import ElfFile
    elf = ElfFile(seed)
    sym = next(s for s in elf.symbols() if s.name == symbol)
    data = bytearray(seed)
    _put(data, elf.sections[sym.table].offset + sym.index * 24 + offset, width, value)
    return bytes(data)


def _with_rel_field(seed, section, entry, offset, width, value):
    start = next(o for n, _, _, o, _ in _sections(seed) if n == section)
    data = bytearray(seed)
    _put(data, start + entry * 16 + offset, width, value)
    return bytes(data)


def _with_datasec_entry_type(seed, datasec, type_id):
    """seed with the first variable of a BTF DATASEC pointing at type_id instead."""
    from pybpf.btf import Btf
    from pybpf.elf import ElfFile
    sec = ElfFile(seed).section(".BTF")
    btf = Btf.from_bytes(sec.data)
    hdr_len, type_off = struct.unpack_from("<4xII", sec.data)
    words = btf._offsets[btf.find(datasec, "datasec")[0] - btf.start_id]  # from type_off
    data = bytearray(seed)
    _put(data, sec.offset + hdr_len + type_off + 4 * words + 12, 4, type_id)
    return bytes(data)


def _cut_before_a_map_load_ends(seed):
    """seed with the function holding the first map ld_imm64 ending between its halves."""
    from pybpf.elf import ElfFile
    elf = ElfFile(seed)
    for index, relocs in elf.relocations().items():
        code = elf.sections[index]
        for r in relocs:
            if code.data[r.offset] == 0x18 and r.symbol.section_name == ".maps":
                fn = next(s for s in elf.symbols() if s.shndx == index and s.type == 2
                          and s.value <= r.offset < s.value + s.size)
                return _with_symbol_field(seed, fn.name, 16, 8, r.offset + 8 - fn.value)
    raise AssertionError("the seed has no map load")


# Mutants that found bugs (issue 7 and this fuzzer), as (seed object, what, maker).
REGRESSIONS = [
    ("globals", ".bss claims 2**57 bytes (was MemoryError)",
     lambda s: _with_section_size(s, ".bss", 1 << 57)),
    ("globals", ".bss claims 2**31 bytes (was a 2 GiB allocation)",
     lambda s: _with_section_size(s, ".bss", 1 << 31)),
    ("legacy", "legacy map symbol past its section (was struct.error)",
     lambda s: _with_symbol_field(s, "old_counts", 8, 8, 4096)),
    ("legacy", "legacy map record running past its section (was struct.error)",
     lambda s: _with_symbol_field(s, "old_counts", 8, 8, 4)),
    ("xdp_count", "program name with a non-UTF-8 byte (was UnicodeEncodeError)",
     lambda s: _renamed_symbol(s, b"xdp_filter", b"xdp_filt\xe9r")),
    ("xdp_count", "program name with a UTF-8 character the kernel refuses",
     lambda s: _renamed_symbol(s, b"xdp_filter", "xdp_fil\u00e9r".encode())),
    ("globals", "code relocation against the SHN_ABS file symbol (was IndexError)",
     lambda s: _with_rel_field(s, ".relxdp", 1, 12, 4, 1)),
    ("legacy", "legacy map symbol of an unknown type, still relocated (was KeyError)",
     lambda s: _with_symbol_field(s, "old_counts", 4, 1, 0xC8)),
    ("mapinmap", ".values relocation against the null symbol (was KeyError: '')",
     lambda s: _with_rel_field(s, ".rel.maps", 0, 8, 8, 7)),
    ("mapinmap", ".values relocation of a map without 'values' (was StopIteration)",
     lambda s: _with_symbol_field(s, "outer", 8, 8, 0x7FFFFFFF)),
    ("mapinmap", "a .maps DATASEC entry naming void (was AttributeError)",
     lambda s: _with_datasec_entry_type(s, ".maps", 0)),
    ("tailcalls", "a function ending inside a map ld_imm64 (was struct.error)",
     _cut_before_a_map_load_ends),
]


# ---- running them (in the child) --------------------------------------------------------

class Hung(Exception):
    """A mutant took longer than HANG_SECONDS."""


def _alarm(signum, frame):
    raise Hung(f"no answer within {HANG_SECONDS} s")


def _fds():
    return set(os.listdir("/proc/self/fd"))


def kernel_bytes(spec):
    """An upper bound of the memory the kernel would set aside for spec's maps."""
    from pybpf.kernel import system
    total = 0
    for m in spec.maps.values():
        value = (m.value_size + 7) // 8 * 8 * (system.possible_cpus() if "PERCPU" in
                                                  getattr(m.type, "name", "") else 1)
        total += m.max_entries * (m.key_size + value + 64) + m.value_size
    return total


def attempt(data):
    """None if data loads or is refused with a pybpf.Error; else what went wrong.

    A mutant whose maps would have the kernel set aside more than LOAD_BUDGET bytes is
    only opened, not loaded: the kernel tries to provide them (a program array of
    1.8e9 slots took it 9 s to refuse), which is not pybpf's to bound and not this
    machine's memory to spend."""
    import pybpf
    from pybpf.loader import BpfObject
    before = _fds()
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        with BpfObject.open(data, name="fuzzed") as obj:
            if kernel_bytes(obj.spec) <= LOAD_BUDGET:
                obj.load()
    except pybpf.Error as e:
        if not str(e):
            return "a pybpf.Error without a message"
    except BaseException:  # noqa: B902 - everything else is the bug looked for
        return traceback.format_exc(limit=8)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    leaked = _fds() - before
    if leaked:
        gc.collect()
        leaked = {fd for fd in _fds() - before if os.path.exists(f"/proc/self/fd/{fd}")}
    if leaked:
        return f"leaked fds {sorted(leaked)}"
    return None


def run_child(seed_dir, per_seed, seed):
    signal.signal(signal.SIGALRM, _alarm)
    objects = {}
    for name in SEEDS:
        with open(os.path.join(seed_dir, f"{name}.o"), "rb") as f:
            objects[name] = f.read()
    failures, count = [], 0
    for name, what, make in REGRESSIONS:
        problem = attempt(make(objects[name]))
        count += 1
        if problem:
            failures.append({"object": name, "mutant": f"regression: {what}", "error": problem})
    for name, data in objects.items():
        rng = random.Random(f"{seed}:{name}")
        for i in range(per_seed):
            mutant, what = mutate(data, rng)
            problem = attempt(mutant)
            count += 1
            if problem:
                failures.append({"object": name, "mutant": f"#{i}: {what}", "error": problem})
    print(json.dumps({"count": count, "failures": failures}))


# ---- the test -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seed_dir(clang, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz_seeds")
    for name, source in SEEDS.items():
        subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-c",
                        os.path.join(PROGS, source), "-o", str(out / f"{name}.o"),
                        f"-I/usr/include/{os.uname().machine}-linux-gnu"], check=True)
    return str(out)


def _capped():
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def test_mutated_objects_load_or_raise_pybpf_errors(seed_dir):
    out = subprocess.run([sys.executable, __file__, seed_dir, str(PER_SEED), str(SEED)],
                         capture_output=True, text=True, preexec_fn=_capped,
                         timeout=HANG_SECONDS * 4 + PER_SEED * len(SEEDS) * 2,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["count"] == len(REGRESSIONS) + PER_SEED * len(SEEDS)
    report = "\n".join(f"{f['object']} {f['mutant']}:\n{f['error']}" for f in result["failures"])
    assert not result["failures"], f"{len(result['failures'])} mutants failed:\n{report}"


if __name__ == "__main__":
    run_child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
