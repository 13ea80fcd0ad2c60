"""What the benchmarks record about the machine they ran on: the CPU's model name,
which docs/performance.md quotes beside every number."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pybpf.kernel.machine import cpu_model  # noqa: E402,F401 - re-exported


def report(doc, text, json_path=None, markdown_path=None):
    """Write a benchmark's document (JSON) and its Markdown where asked; print the text."""
    import json
    for target, content in ((json_path, json.dumps(doc, indent=1)), (markdown_path, text)):
        if target:
            with open(target, "w") as f:
                f.write(content)
    print(text)
