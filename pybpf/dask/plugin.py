"""Whether a worker can run the pipeline, checked where it runs.

:func:`check` is what a worker answers: root or CAP_BPF/CAP_PERFMON, and the backend
"auto" would take on its kernel (or why none works). :class:`PipelineCheck` is a
Dask worker plugin that runs it when a worker starts or joins and logs the verdict
(``client.register_plugin(PipelineCheck())``); ``dask worker --preload
pybpf.dask.preload`` does the same and refuses to start a worker that cannot run it.
:func:`check_workers` asks every connected worker, and filter_reduce uses it to keep
files off workers that would fail.
"""
import functools
import logging
import os

from ..errors import Error

try:
    from distributed import WorkerPlugin
except ImportError:          # pybpf.dask's __init__ names the extra to install
    WorkerPlugin = object

log = logging.getLogger("pybpf.dask")


def check(backend="auto", override=False):
    """{"ok", "backend", "why", "kernel", "pid"} for this process's kernel. Worked out
    once per process (gathering a kernel's facts loads probe programs: ~0.1 s), since
    neither the kernel nor the worker's privileges change while it runs."""
    return dict(_verdict(backend, override))


@functools.lru_cache(maxsize=None)
def _verdict(backend, override):
    from ..filterreduce import backends
    from ..kernel import release
    verdict = {"kernel": release.kernel_release(), "pid": os.getpid()}
    try:
        chosen, why = backends.choose(backend, override)
    except Error as e:
        return dict(verdict, ok=False, backend=None, why=str(e))
    return dict(verdict, ok=True, backend=chosen.name, why=why)


class PipelineCheck(WorkerPlugin):
    """Checks, as each worker starts (or joins), that it can run the pipeline; the
    verdict is logged and kept as the worker's ``pybpf_pipeline`` attribute."""
    name = "pybpf-pipeline-check"
    idempotent = True

    def __init__(self, backend="auto", override=False):
        self.backend, self.override = backend, override

    def setup(self, worker):
        verdict = check(self.backend, self.override)
        worker.pybpf_pipeline = verdict
        if verdict["ok"]:
            log.info("pybpf: worker %s can run the filter-reduce pipeline: %s",
                     worker.name, verdict["why"])
        else:
            log.warning("pybpf: worker %s cannot run the filter-reduce pipeline: %s",
                        worker.name, verdict["why"])

    def teardown(self, worker):
        from .job import READERS
        READERS.close()


def check_workers(client, backend="auto", override=False):
    """{address: verdict} from every connected worker."""
    return client.run(check, backend=backend, override=override)
