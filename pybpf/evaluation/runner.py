"""One run of the evaluation: the experiments in the thesis's order, with progress,
the noise of the machine around each, and the report written at the end."""
import datetime
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

from . import costs, data, helpers, override, pipeline, plots, report, tailcalls, thesis
from . import verification
from .progress import Progress
from .stats import Noise, machine

EXPERIMENTS = (verification, helpers, tailcalls, override, pipeline, costs)


@dataclass
class Context:
    grid: object
    progress: Progress
    workdir: str
    cache: str
    verdicts: dict
    best_backend: Optional[str]
    backend_why: str


def _context(grid, progress, workdir, found):
    usable = [name for name, v in found.items() if v.usable]
    why = "; ".join(f"{n}: {v.explain()}" for n, v in found.items())
    return Context(grid, progress, workdir, data.cache_dir(), found,
                   usable[0] if usable else None, why)


def _plan(grid, found):
    n_variants = max(1, sum(2 + 2 * bool(v.can_override) for v in found.values() if v.usable))
    return [(f"{m.NAME} {m.TITLE}", m.plan(grid, n_variants) if m is pipeline else m.plan(grid))
            for m in EXPERIMENTS]


def run(out, grid, environment, emulated=False, quiet=False, draw=True):
    """Run every experiment on grid, write the report into out; returns the results.
    Without draw, no plots (a VM's guest leaves them to the host: finish())."""
    os.makedirs(out, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    workdir = tempfile.mkdtemp(prefix="pybpf-thesis-")
    wall = time.monotonic()
    whole = Noise()
    sections = []
    try:
        from ..filterreduce import verdicts
        found = verdicts()
        progress = Progress(_plan(grid, found), quiet=quiet)
        ctx = _context(grid, progress, workdir, found)
        for index, module in enumerate(EXPERIMENTS):
            progress.begin(index)
            noise, t = Noise(), time.monotonic()
            section = module.run(ctx, sections[-1]) if module is costs else module.run(ctx)
            section.seconds, section.noise = time.monotonic() - t, noise.share()
            sections.append(section)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    doc = {"run_id": run_id, "started": f"{started:%Y-%m-%d %H:%M:%S}",
           "date": f"{started:%Y-%m-%d}", "seconds": time.monotonic() - wall,
           "grid": grid.__dict__, "machine": machine(environment), "emulated": emulated,
           "noise": whole.share(), "thesis": thesis.SETUP,
           "sections": [s.to_dict() for s in sections]}
    return finish(out, doc, draw)


def finish(out, doc, draw=True):
    """Draw the plots (if asked and matplotlib imports) and write the report."""
    missing = plots.available() if draw else "drawn by the host after the VM's run"
    doc["plots"], doc["plots_missing"] = missing is None, missing
    if missing is None:
        plots.draw_all(out, doc)
    report.write(out, doc)
    return doc

