"""The e2BPF filter-reduce pipeline: numbers in file data are parsed, filtered and
reduced inside the kernel while the file is read; user space gets only the result.

    with FilterReduce(filter="x % 3 == 0 and x < 0") as fr:
        print(fr.read("data.txt").to_dict())

Modules, one per part: expr (filter expressions), codegen (expressions as BPF),
stage (the generated filter stage), backends (where the read path is hooked), pipeline
(the kernel objects), tenants (who takes part), results, reader (FilterReduce),
reference (the same computation in user space), sample (test data). The shipped BPF
side is programs/filterreduce.bpf.c; the shared layouts are programs/filterreduce.h,
mirrored in layout. docs/filterreduce.md describes the whole, the tenant protocol
included.
"""
from ..exports import lazy

# Imported on first use (pybpf.exports): ``probe`` wants the backends' verdicts, not
# the reader, the stage generator and every hook module.
__getattr__, __dir__ = lazy(__name__, {
    "Reduce": ".custom", "Verdict": ".backends", "choose": ".backends",
    "verdicts": ".backends", "FilterError": ".expr", "parse": ".expr",
    "Pipeline": ".pipeline", "detach": ".pipeline", "FilterReduce": ".reader",
    "Tenant": ".reader", "Result": ".results", "REDUCTIONS": ".names",
    "PARSERS": ".names", "BACKEND_NAMES": ".names"})

__all__ = ["FilterReduce", "Tenant", "Reduce", "Pipeline", "detach", "Result", "REDUCTIONS",
           "PARSERS", "BACKEND_NAMES", "Verdict", "choose", "verdicts", "parse",
           "FilterError"]
