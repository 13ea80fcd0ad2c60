"""Loading the scripts in tools/ as modules, for tests that drive them in-process.

tools/ is not a package (its scripts run as ``python tools/x.py``), so tests import
them by path. pytest puts tests/ on sys.path for conftest.py; ``import toolbox`` works
from any test module below it.
"""
import importlib.util
import os

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


def load_tool(name):
    """tools/<name>.py as a fresh module."""
    path = os.path.join(TOOLS, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"pybpf_tool_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
