#!/usr/bin/env python3
"""Start-up and footprint: what a CLI call costs as a whole process, and how big
pybpf is, against `python -c pass` and bpftool in the same run.

pybpf is measured as an installed package would run: a throwaway venv (no pip, no
editable-install finder) whose site-packages points at this tree, with bytecode
compiled first (a wheel install compiles it; PYTHONDONTWRITEBYTECODE is ignored
here). Each command runs --runs times, the commands interleaved run by run so a
drift of the machine's speed hits all of them alike; reported: the median wall
time, and from one more run each the peak RSS (GNU time's, see peak_rss_mib).

Commands: `python -c pass`; `python -c "import pybpf"`; `python -m pybpf --help`;
`python -m pybpf load SMALL.o` and `bpftool prog loadall SMALL.o DIR` (the shipped
readcount object; bpftool pins into a temporary bpffs directory, removed);
`python -m pybpf probe --json --no-helpers`; `python -m pybpf run SMALL.o --duration
0`; `python -m pybpf attach copyout FILE` on a 16 MiB file. Footprint: the wheel's
size and its installed size (pip wheel of this tree; zero dependencies checked from
its metadata). Needs root (loading), clang (building the wheel's BPF objects) and
bpftool.

    python tools/bench_startup.py [--runs 21] [--json FILE] [--markdown FILE]
"""
import argparse
import datetime
import glob
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]
from benchhost import cpu_model, report  # noqa: E402


def clean_venv(where):
    """A venv without pip whose site-packages holds a .pth naming ROOT; its python."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", where], check=True)
    python = os.path.join(where, "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True,
                          text=True).stdout.strip()
    with open(os.path.join(site, "pybpf.pth"), "w") as f:
        f.write(ROOT + "\n")
    subprocess.run([python, "-m", "compileall", "-q", os.path.join(ROOT, "pybpf")],
                   check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONDONTWRITEBYTECODE=""))
    return python


def run_once(argv):
    """(wall seconds, exit status) of one run of argv, output discarded."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
    _, status = os.waitpid(pid, 0)
    return time.perf_counter() - started, os.waitstatus_to_exitcode(status)


def peak_rss_mib(argv, tmp):
    """The peak RSS of argv in MiB, as GNU time reports it; None without it.

    Not this process's wait4: a child spawned from a big process (posix_spawn's
    vfork, or fork) starts with the parent's high-water mark, so every command would
    read as this benchmark's own size. GNU time forks from its own small image."""
    if not os.path.exists("/usr/bin/time"):
        return None
    out = os.path.join(tmp, "rss")
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out, *argv], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        return int(f.read().split()[-1]) / 1024


def commands(python, obj, data, pins):
    pybpf = [python, "-m", "pybpf"]
    return {
        "python -c pass": [python, "-c", "pass"],
        "import pybpf": [python, "-c", "import pybpf"],
        "pybpf --help": pybpf + ["--help"],
        "pybpf load SMALL.o": pybpf + ["load", obj],
        "bpftool prog loadall SMALL.o": ["bpftool", "prog", "loadall", obj, pins],
        "pybpf probe --json --no-helpers": pybpf + ["probe", "--json", "--no-helpers"],
        "pybpf run SMALL.o --duration 0": pybpf + ["run", obj, "--duration", "0"],
        "pybpf attach copyout (16 MiB)": pybpf + ["attach", "copyout", data, "--quiet"],
    }


def measure_commands(python, runs, tmp):
    from pybpf import shipped
    from pybpf.filterreduce import sample
    obj = shipped.path("readcount")
    data = os.path.join(tmp, "numbers.txt")
    sample.generate(data, 16 << 20, seed=1)
    bpffs = os.path.join(tmp, "bpffs")
    os.mkdir(bpffs)
    subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True)
    try:
        pins = os.path.join(bpffs, "pins")
        cmds = commands(python, obj, data, pins)
        samples = {name: [] for name in cmds}
        for _ in range(runs):
            for name, argv in cmds.items():
                wall, code = run_once(argv)
                if code:
                    sys.exit(f"bench_startup: {' '.join(argv)} exited {code}")
                samples[name].append(wall)
                shutil.rmtree(pins, ignore_errors=True)
        rss = {}
        for name, argv in cmds.items():
            rss[name] = peak_rss_mib(argv, tmp)
            shutil.rmtree(pins, ignore_errors=True)
    finally:
        subprocess.run(["umount", bpffs], check=True)
    return {name: {"wall_ms": statistics.median(s) * 1e3, "wall_ms_min": min(s) * 1e3,
                   "wall_ms_max": max(s) * 1e3, "peak_rss_mib": rss[name],
                   "argv": " ".join(cmds[name])} for name, s in samples.items()}


def footprint(tmp):
    """The wheel's size, its installed size, and its declared dependencies."""
    out = os.path.join(tmp, "wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out,
                    ROOT], check=True, stdout=subprocess.DEVNULL)
    (wheel,) = glob.glob(os.path.join(out, "pybpf-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        installed = sum(i.file_size for i in z.infolist())
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [line.split(":", 1)[1].strip() for line in
                    z.read(meta).decode().splitlines() if line.startswith("Requires-Dist:")]
        objects = sorted(n for n in z.namelist() if n.endswith(".bpf.o"))
    core = [r for r in requires if "extra ==" not in r]
    return {"wheel_bytes": os.path.getsize(wheel), "installed_bytes": installed,
            "core_dependencies": core, "bpf_objects": objects}


def markdown(doc):
    c, f = doc["commands"], doc["footprint"]
    base = c["python -c pass"]["wall_ms"]
    lines = [f"Measured {doc['date']} on {doc['cpu']} ({doc['cpus']} CPUs), Linux "
             f"{doc['kernel']}, Python {doc['python']}; medians of {doc['runs']} runs, "
             f"commands interleaved; peak RSS as GNU time reports it.", "",
             "| command | wall (median) | min-max | minus `python -c pass` | peak RSS |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in c.items():
        lines.append(f"| `{name}` | {r['wall_ms']:.1f} ms | {r['wall_ms_min']:.0f}-"
                     f"{r['wall_ms_max']:.0f} ms | {r['wall_ms'] - base:+.1f} ms | "
                     f"{_mib(r['peak_rss_mib'])} |")
    lines += ["", f"Wheel: {f['wheel_bytes'] / 1024:.0f} KiB, installed "
              f"{f['installed_bytes'] / 1024:.0f} KiB, core dependencies: "
              f"{', '.join(f['core_dependencies']) or 'none'}; BPF objects in it: "
              f"{len(f['bpf_objects'])}."]
    return "\n".join(lines) + "\n"


def _mib(value):
    return "n/a (no /usr/bin/time)" if value is None else f"{value:.1f} MiB"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("bpftool") is None:
        sys.exit("bench_startup: needs root and bpftool (apt-get install bpftool)")
    with tempfile.TemporaryDirectory(prefix="pybpf-startup-") as tmp:
        python = clean_venv(os.path.join(tmp, "venv"))
        doc = {"date": datetime.date.today().isoformat(), "cpu": cpu_model(),
               "cpus": os.cpu_count(), "kernel": platform.release(),
               "python": platform.python_version(), "runs": args.runs,
               "commands": measure_commands(python, args.runs, tmp),
               "footprint": footprint(tmp)}
    report(doc, markdown(doc), args.json, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
