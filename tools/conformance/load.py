"""Loading one object with libbpf and with pybpf, each in an isolated child.

Both loads run in a child process (a crash, hang or leak in one object cannot touch
the others) inside a private mount namespace with a bpffs of its own at /sys/fs/bpf:
libbpf pins ``LIBBPF_PIN_BY_NAME`` maps under /sys/fs/bpf by default, and a private
bpffs means those pins can neither collide between objects loaded in parallel nor
outlive the child (the namespace's bpffs, and every pin in it, goes away with it).
pybpf is given the same pin root, so both tools exercise map pinning alike.

libbpf is bpftool's (``bpftool prog loadall OBJ DIR``) or, for a tree newer than
bpftool's libbpf, the tree's own libbpf driven by libbpf_load.c (``LOADER OBJ``).

options (``{"no_autoload": [PROG...], "max_entries": {MAP: N}}``) are what a corpus's
own user space would do between open and load (tools/libbpf_tools.py for the
libbpf-tools corpus): libbpf_load gets them as -n/-m, pybpf as the ``run``/``load``
options --no-autoload/--max-entries (pybpf.cli.loadopts), so both load the same.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

from .corpus import LOAD_TIMEOUT, PIN_ROOT, REPO, TOOLS, SetupError, _run

ENTRY = os.path.join(TOOLS, "conformance.py")


def _isolated(mode, obj, timeout, loader=None, options=None):
    """Run `conformance.py --inner MODE OBJ LOADER OPTIONS` in a private mount
    namespace; its JSON verdict."""
    cmd = ["unshare", "--mount", "--propagation", "private", sys.executable,
           ENTRY, "--inner", mode, obj, loader or "", json.dumps(options or {})]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.monotonic()
    try:
        res = _run(cmd, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout} s", "seconds": timeout}
    except FileNotFoundError:
        raise SetupError("unshare (util-linux) is missing: apt-get install util-linux")
    elapsed = round(time.monotonic() - started, 2)
    for line in reversed(res.stdout.splitlines()):
        if line.startswith("{"):
            verdict = json.loads(line)
            verdict["seconds"] = elapsed
            return verdict
    tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": False, "error": f"child exited with status {res.returncode}: {tail}",
            "seconds": elapsed}


def load_libbpf(obj, timeout=LOAD_TIMEOUT, loader=None, options=None):
    """loader: the libbpf_load binary to use instead of bpftool (needed for options)."""
    return _isolated("libbpf", obj, timeout, loader, options)


def load_pybpf(obj, timeout=LOAD_TIMEOUT, options=None):
    return _isolated("pybpf", obj, timeout, options=options)


def loader_arguments(options):
    """libbpf_load's -n/-m arguments for options."""
    return ([a for p in options.get("no_autoload", ()) for a in ("-n", p)]
            + [a for m, n in options.get("max_entries", {}).items()
               for a in ("-m", f"{m}={n}")])


# Lines of libbpf's output that say what went wrong, in the order they are preferred.
_LIBBPF_ERROR = re.compile(r"fail|error|unsupported|unrecogni[sz]ed|not found|invalid|"
                           r"can't|cannot|missing|unknown|unexpected|doesn't|mismatch|"
                           r"not resolved", re.IGNORECASE)
# bpftool 7.1's loadall pins every program of the object after libbpf loaded it, also
# those libbpf was told not to load (SEC("?...")), and then fails with this message.
# The object did load: the message exists only past a successful bpf_object__load().
_PIN_UNLOADED = "can't pin program that wasn't loaded"
_LOADED = re.compile(r"^loaded (\d+) programs$", re.MULTILINE)


def libbpf_first_error(output):
    """The first line of libbpf's output that names the failure (the verifier log
    between BEGIN/END PROG LOAD LOG is skipped: its last line is kept apart)."""
    in_log = False
    for line in output.splitlines():
        if "-- BEGIN PROG LOAD LOG --" in line:
            in_log = True
            continue
        if "-- END PROG LOAD LOG --" in line:
            in_log = False
            continue
        if not in_log and _LIBBPF_ERROR.search(line):
            return line.strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "failed without a message"


def verifier_reason(log):
    """The verifier log's last line that is not its statistics: why it refused."""
    for line in reversed(log.strip().splitlines()):
        line = line.strip()
        if line and not line.startswith(("processed ", "verification time")):
            return line
    return ""


def _inner_mount():
    """A bpffs of the child's own at PIN_ROOT (the child runs in a private mount
    namespace): the host's /sys/fs/bpf is shared by the loads running side by side, so
    counting the pins there counted the other load's too."""
    from pybpf.kernel import system
    system.mount("bpf", PIN_ROOT, "bpf")


def _inner_libbpf(obj, loader=None, options=None):
    _inner_mount()
    if loader:
        res = _run([loader, *loader_arguments(options or {}), obj, PIN_ROOT])
        loaded = _LOADED.search(res.stdout)
        if res.returncode == 0 and loaded:
            return {"ok": True, "error": "", "programs": int(loaded.group(1))}
        return {"ok": False, "error": libbpf_first_error(res.stderr + res.stdout)}
    pins = os.path.join(PIN_ROOT, "conformance")
    res = _run(["bpftool", "prog", "loadall", obj, pins])
    output = res.stdout + res.stderr
    programs = len(os.listdir(pins)) if os.path.isdir(pins) else 0
    shutil.rmtree(pins, ignore_errors=True)
    if res.returncode == 0:
        return {"ok": True, "error": "", "programs": programs}
    if _PIN_UNLOADED in output:
        return {"ok": True, "error": "", "programs": None,  # pins were rolled back
                "quirk": "loaded; bpftool then failed to pin a SEC(\"?...\") program "
                         "libbpf did not load"}
    return {"ok": False, "error": libbpf_first_error(output)}


def _inner_pybpf(obj, options=None):
    import argparse

    from pybpf.cli import loadopts
    from pybpf.loader import BpfObject
    _inner_mount()
    options = options or {}
    info = {"sections": [], "core": 0}
    try:
        with BpfObject.open(obj) as o:
            ext = o.spec.btf_ext
            info["core"] = sum(len(r) for r in ext.core_relos.values()) if ext else 0
            info["sections"] = sorted({p.section_def.section for p in o.spec.programs.values()})
            programs = loadopts.apply(o, argparse.Namespace(
                set=[], only=[], no_autoload=list(options.get("no_autoload", ())),
                max_entries=[f"{m}={n}" for m, n in options.get("max_entries", {}).items()]))
            o.load(pin_maps=PIN_ROOT, programs=programs)
            info["programs"] = len(o.programs)
    except Exception as e:  # the verdict is the point: every failure is data here
        text = str(e).strip().splitlines()
        verdict = dict(info, ok=False, error=f"{type(e).__name__}: {text[0] if text else ''}")
        reason = verifier_reason(getattr(e, "log", "") or "")
        if reason:
            verdict["verifier"] = reason
        return verdict
    return dict(info, ok=True, error="")


def inner(mode, obj, loader="", options="{}"):
    """The child's side: one load, its verdict as a dict."""
    options = json.loads(options)
    if mode == "libbpf":
        return _inner_libbpf(obj, loader or None, options)
    return _inner_pybpf(obj, options)
