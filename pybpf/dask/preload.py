"""``dask worker SCHEDULER --preload pybpf.dask.preload``: a worker that checks, as
it starts, that it can run the filter-reduce pipeline, and closes (saying why, in
its log) when it cannot, so no file is given to a worker that would fail on it.
``--pybpf-backend NAME`` asks for a backend (default auto)."""
import click

from .plugin import PipelineCheck, log


@click.command()
@click.option("--pybpf-backend", default="auto", help="the backend the worker must run")
def dask_setup(worker, pybpf_backend):
    plugin = PipelineCheck(pybpf_backend)
    plugin.setup(worker)
    if not worker.pybpf_pipeline["ok"]:
        log.error("pybpf: closing this worker: it cannot run the filter-reduce pipeline")
        worker.loop.add_callback(worker.close, reason="pybpf: cannot run the pipeline")
        return
    worker.plugins[plugin.name] = plugin
