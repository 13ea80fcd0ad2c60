"""What the user space of Debian's libbpf-tools does to each tool's BPF object before
loading it, in one place: tests/kernel/test_real_tools.py runs the objects with
``python -m pybpf run`` and tools/conformance (``--tree libbpf-tools``) loads them with
pybpf and libbpf, and both must apply the same choices or they test different things.

The tools' C sources are not on the machine; what is encoded here is what bcc's
libbpf-tools (0.26) do between opening the skeleton and loading it:

- variants: a tool that ships a program twice keeps one per the kernel. fentry/fexit
  against kprobe/kretprobe is decided by ``fentry_can_attach()`` (trace_helpers.c
  loads a fentry program), tp_btf against raw_tp by ``probe_tp_btf()``; the other
  variant's autoload is turned off. Which tools do that is ALTERNATIVES: biosnoop and
  biostacks also hold fentry and kprobe programs, but use both.
- sizes: maps the source leaves unsized get their size from the command line
  (MAX_ENTRIES; perf event arrays are sized to the CPUs by the loader itself).
- ``run`` options that have no effect on loading (event types of the records).

extract_all() takes the objects out of the installed package, cached per package
version, so the corpus is exactly what that version ships.
"""
import dataclasses
import functools
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import extract_bpf_objects  # noqa: E402

PACKAGE = "libbpf-tools"
SBIN = "/usr/sbin"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADERS = os.path.join(REPO, "tests", "data", "headers")

# tool -> the two variant families it chooses between (fentry covers fentry/fexit,
# kprobe covers kprobe/kretprobe).
ALTERNATIVES = {
    **{t: ("fentry", "kprobe") for t in (
        "btrfsdist", "btrfsslower", "ext4dist", "ext4slower", "fsdist", "fsslower",
        "nfsdist", "nfsslower", "xfsdist", "xfsslower", "klockstat", "solisten",
        "tcpconnlat", "tcprtt", "tcpsynbl", "vfsstat")},
    **{t: ("tp_btf", "raw_tp") for t in (
        "biolatency", "cpudist", "hardirqs", "runqlat", "runqslower", "softirqs")},
}
# tool -> {map: entries} for maps the source leaves unsized (the tools' defaults).
MAX_ENTRIES = {"cpudist": {"start": 10240, "hists": 10240}}
# tool -> run options that do not change the load: how to decode the records.
EVENT_TYPES = {
    "execsnoop": ["--event-type", "event"],
    "opensnoop": ["--event-type", os.path.join(HEADERS, "opensnoop.h") + ":event"],
}

# Tools whose programs attach on a kernel without kprobes (the test host).
RUNNABLE = ("biolatency", "biopattern", "bitesize", "cpudist", "drsnoop", "execsnoop",
            "exitsnoop", "hardirqs", "killsnoop", "mountsnoop", "opensnoop", "runqlat",
            "runqslower", "sigsnoop", "softirqs", "statsnoop", "syscount", "tcplife",
            "tcpstates")
KPROBES = "needs kprobes (this kernel has none, and refuses fentry): runs in the VM tier"
NEED_KPROBES = (
    "bindsnoop", "biosnoop", "biostacks", "biotop", "btrfsdist", "btrfsslower",
    "cachestat", "ext4dist", "ext4slower", "filelife", "filetop", "fsdist", "fsslower",
    "klockstat", "mdflush", "nfsdist", "nfsslower", "numamove", "oomkill", "readahead",
    "slabratetop", "solisten", "tcpconnect", "tcpconnlat", "tcprtt", "tcpsynbl",
    "tcptop", "tcptracer", "vfsstat", "xfsdist", "xfsslower")
# Tools `run` cannot stand in for anywhere, and why.
NOT_RUNNABLE = {
    **{t: "its user space sizes the stack map's values (perf_max_stack_depth), which "
          "run has no option for" for t in ("capable", "offcputime", "wakeuptime")},
    **{t: "attaches to a function its user space names at run time (a dummy section)"
       for t in ("funclatency", "gethostlatency", "ksnoop")},
    "bashreadline": "its uretprobe attaches to bash's readline, found by its user space",
    "javagc": "attaches to a JVM's USDT probes, which need a running JVM",
    "cpufreq": "perf_event programs need the sampling events its user space opens",
    "llcstat": "perf_event programs need the hardware cache events its user space opens",
    "runqlen": "perf_event program; its user space opens the sampling events",
}


def family(section):
    """The variant family of a program's section: fentry, kprobe, tp_btf, raw_tp or
    None."""
    kind = section.lstrip("?").split("/")[0].split(".")[0]
    return {"fentry": "fentry", "fexit": "fentry", "kprobe": "kprobe",
            "kretprobe": "kprobe", "tp_btf": "tp_btf", "raw_tp": "raw_tp",
            "raw_tracepoint": "raw_tp"}.get(kind)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """What the tools probe before choosing variants."""
    fentry: bool   # fentry_can_attach()
    tp_btf: bool   # probe_tp_btf()


@functools.lru_cache(maxsize=None)
def this_kernel():
    """The running kernel as the tools' probes see it: a fentry program on vfs_read
    and a tp_btf program on sched_switch, loaded as trace_helpers.c does."""
    from pybpf.btf.model import Btf
    from pybpf.kernel import features
    from pybpf.kernel.constants import AttachType, ProgType

    def loads(name, kind, attach):
        ids = Btf.vmlinux().find(name, kind)
        return bool(ids) and features.probe_load(
            ProgType.TRACING, features.RET0,
            {"expected_attach_type": attach, "attach_btf_id": ids[0]}) is None
    return Kernel(fentry=loads("vfs_read", "func", AttachType.TRACE_FENTRY),
                  tp_btf=loads("btf_trace_sched_switch", "typedef", AttachType.TRACE_RAW_TP))


def load_options(tool, sections, kernel):
    """(programs not to load, {map: max_entries}) for tool, whose programs are
    sections ({name: section}), as its user space decides on kernel."""
    pair = ALTERNATIVES.get(tool)
    off = []
    if pair:
        keep = {"fentry": kernel.fentry, "tp_btf": kernel.tp_btf}[pair[0]]
        drop = pair[1] if keep else pair[0]
        off = [name for name, sec in sections.items() if family(sec) == drop]
    return off, dict(MAX_ENTRIES.get(tool, {}))


def run_args(tool, sections, kernel):
    """`python -m pybpf run` options for tool: the load options plus its event types."""
    off, sizes = load_options(tool, sections, kernel)
    args = [a for name in off for a in ("--no-autoload", name)]
    args += [a for m, n in sizes.items() for a in ("--max-entries", f"{m}={n}")]
    return args + EVENT_TYPES.get(tool, [])


def sections_of(path):
    """{program: section} of the object at path, read by pybpf (nothing loaded)."""
    from pybpf.loader import BpfObject
    with BpfObject.open(path) as obj:
        return {n: p.section_def.section for n, p in obj.spec.programs.items()}


def package_version():
    """The installed libbpf-tools version, or None when it is not installed."""
    try:
        res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE],
                             capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def binaries():
    """The package's tools (paths in /usr/sbin), from its file list."""
    res = subprocess.run(["dpkg-query", "-L", PACKAGE], capture_output=True, text=True)
    return sorted(p for p in res.stdout.split()
                  if os.path.dirname(p) == SBIN and os.path.isfile(p))


def extract_all(outdir):
    """Extract every tool's object into outdir (once per package version: a stamp
    file names the version extracted); {tool: path of its first object}."""
    version = package_version()
    stamp = os.path.join(outdir, "version")
    try:
        with open(stamp) as f:
            fresh = f.read().strip() == version
    except OSError:
        fresh = False
    found = {}
    os.makedirs(outdir, exist_ok=True)
    for binary in binaries():
        tool = os.path.basename(binary)
        path = os.path.join(outdir, tool + ".bpf.o")
        if not (fresh and os.path.exists(path)):
            paths = extract_bpf_objects.extract(binary, outdir)
            if not paths:
                continue
        found[tool] = path
    with open(stamp, "w") as f:
        f.write(f"{version}\n")
    return found
