"""The user-space baseline: fr_cloop.c, the same parse, filter and reductions as the
pipeline in a read() loop, built with the machine's C compiler (cc, gcc or clang) at
run time, and run as a process per measurement."""
import json
import os
import shutil
import subprocess

from ..errors import MissingError

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fr_cloop.c")
COMPILERS = ("cc", "gcc", "clang")


def build(out):
    """The path of the built C loop in directory out; MissingError without a compiler."""
    compiler = next((c for c in COMPILERS if shutil.which(c)), None)
    if compiler is None:
        raise MissingError("no C compiler (cc, gcc or clang) for the user-space C loop: "
                           "install gcc (apt-get install gcc), or read the report "
                           "without it")
    exe = os.path.join(out, "fr_cloop")
    subprocess.run([compiler, "-O2", "-o", exe, SOURCE], check=True)
    return exe


def run(exe, path, chunk, threshold):
    """(seconds in the loop, as it measures from open() to the end; result dict with
    bytes, numbers_seen, numbers_kept, numbers_out_of_range, sum, min and max)."""
    doc = json.loads(subprocess.run([exe, path, str(chunk), str(threshold)], check=True,
                                    capture_output=True, text=True).stdout)
    seconds = doc.pop("seconds")
    doc["sum"] = (doc.pop("sum_hi") << 64) + doc.pop("sum_lo")
    if not doc["numbers_kept"]:
        doc["min"] = doc["max"] = None
    return seconds, doc


def agrees(doc, want):
    """Whether a result dict says what the reference Result does."""
    return all(doc[k] == getattr(want, k) for k in ("bytes", "numbers_seen", "numbers_kept",
                                                    "sum", "min", "max"))
