"""The client side of tests/kernel/test_dask.py, run in the cluster's hub netns:

    python dask_driver.py SPEC.json

SPEC: scheduler, files, filter (an expression, or "py:NAME" for a function of this
module), options for filter_reduce, and optionally "kill": {victim, pid, busy,
gate}: the victim's worker is blocked by one gate task and the "busy" worker by two
(so the scheduler places replicated files on the victim), and once a read task is
queued on the victim it is killed with SIGKILL and the gates are opened. Prints the
DistributedResult as JSON, with "files" and, for a kill, where the tasks were.
"""
import json
import os
import signal
import sys
import threading
import time

from distributed import Client

from pybpf.dask import check_workers, filter_reduce

LIMIT = 7


def in_range(x):                 # a filter function, sent to the workers as source
    return x % LIMIT == 0 or _big(x)


def _big(x):
    return x > 990_000


def gate(path):
    """Occupy a worker's one thread until path exists."""
    while not os.path.exists(path):
        time.sleep(0.02)
    return path


def main(spec):
    client = Client(spec["scheduler"], timeout=30)
    workers = {w["name"]: a for a, w in client.scheduler_info()["workers"].items()}
    flt = spec.get("filter")
    if isinstance(flt, str) and flt.startswith("py:"):
        flt = globals()[flt[3:]]
    out = {}
    if spec.get("check_only"):
        json.dump({"verdicts": {str(client.scheduler_info()["workers"][a]["name"]): v
                                for a, v in check_workers(client).items()}}, sys.stdout)
        return
    if spec.get("expect_timeout"):
        json.dump(_timed_out(client, spec, flt), sys.stdout)
        return
    kill = spec.get("kill")
    gates = []
    if kill:
        for name, n in ((kill["victim"], 1), (kill["busy"], 2)):
            gates += [client.submit(gate, kill["gate"], workers=[workers[name]], pure=False)
                      for _ in range(n)]
        watcher = threading.Thread(target=_kill_when_queued,
                                   args=(client, workers[kill["victim"]], kill, out))
        watcher.start()
    res = filter_reduce(client, spec["files"], flt, spec.get("reduce", "count,sum,min,max"),
                        timeout=120, **spec.get("options", {}))
    if kill:
        watcher.join()
        client.cancel(gates)
    doc = res.to_dict()
    doc["files"] = [r.to_dict() for r in res.files]
    doc["complete"] = res.complete
    doc.update(out)
    json.dump(doc, sys.stdout)
    client.close()


def _timed_out(client, spec, flt):
    """filter_reduce with a timeout too short to meet: its error, and the pybpf tasks
    the scheduler still has a moment later (none: they are cancelled)."""
    from pybpf.errors import PipelineError
    try:
        filter_reduce(client, spec["files"], flt, timeout=spec["expect_timeout"])
        error = None
    except PipelineError as e:
        error = str(e)
    time.sleep(1.0)

    def ours(dask_scheduler):
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith("pybpf-")]
    return {"error": error, "left": client.run_on_scheduler(ours)}


def _kill_when_queued(client, victim, kill, out):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        queued = [k for k in client.processing([victim]).get(victim, ())
                  if str(k).startswith("pybpf-read-")]
        if queued:
            out["queued_on_victim"] = len(queued)
            os.kill(kill["pid"], signal.SIGKILL)
            out["killed_at"] = time.time()
            break
        time.sleep(0.02)
    # The victim is gone for good once the scheduler has removed it; then the
    # other gates open and the rescheduled work runs.
    while victim in client.scheduler_info()["workers"] and time.monotonic() < deadline:
        time.sleep(0.05)
    open(kill["gate"], "w").close()


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        main(json.load(f))
