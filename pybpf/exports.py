"""Package attributes imported on first use (PEP 562), for the packages whose
``__init__`` re-exports names from many modules (pybpf, pybpf.attach,
pybpf.filterreduce).

Each CLI call is a whole process, and what it imports is most of its start-up: a
package that imported all its modules to re-export their names would make
``python -m pybpf load`` pay for the filter-reduce pipeline and every hook kind.

    __getattr__, __dir__ = lazy(__name__, {"Map": ".maps", ...})
"""
import importlib
import sys


def lazy(package, names):
    """(__getattr__, __dir__) for package: names maps an attribute to the module
    (relative to package) that defines it; the value is cached in the package."""
    def __getattr__(name):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))
    return __getattr__, __dir__
