"""The pipeline's vocabulary, in a module that imports nothing: the names the CLI
offers as choices (backends, parsers, reductions) and the default read size, so that
building the command line does not load the pipeline."""

BACKEND_NAMES = ("copyout", "copy_to_iter", "syscall")   # best first
PARSERS = ("native", "strtol")
REDUCTIONS = ("count", "sum", "min", "max", "avg")
DEFAULT_CHUNK = 64 * 1024     # bytes per read() when the pipeline reads a file
