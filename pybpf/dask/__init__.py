"""Filter-reduce pushed down to the storage nodes of a Dask cluster (the ``dask``
extra: ``pip install 'pybpf[dask]'``, which brings Dask's distributed scheduler).

    from distributed import Client
    from pybpf.dask import filter_reduce

    client = Client("tcp://scheduler:8786")
    res = filter_reduce(client, {"node-a": ["/data/1.txt"], "node-b": ["/data/2.txt"]},
                        filter="x >= 100", reduce="count,sum,avg")
    res.sum, res.avg, res.nodes, res.missing

Each file is read through the kernel pipeline on a worker that holds it; only
partial aggregates cross the network, and they are combined on the cluster.
Modules: placement (which worker holds what), job (what a worker runs), source
(filter functions as text), partials (combining), pushdown (the scheduling),
results, plugin and preload (a worker's check that it can run the pipeline).
docs/dask.md describes the whole.
"""
try:
    import distributed  # noqa: F401 - the extra's dependency, checked first
except ImportError:
    from ..errors import DependencyError
    raise DependencyError("pybpf.dask needs Dask's distributed scheduler, the dask extra: "
                          "pip install 'pybpf[dask]'") from None

from .placement import File, Missing, parse  # noqa: E402
from .plugin import PipelineCheck, check, check_workers
from .pushdown import filter_reduce
from .results import DistributedResult

__all__ = ["filter_reduce", "DistributedResult", "Missing", "File", "parse",
           "PipelineCheck", "check", "check_workers"]
