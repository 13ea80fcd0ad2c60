#!/usr/bin/env python3
"""Conformance of pybpf's object loader with libbpf on a real corpus: the entry point
of the package tools/conformance/ (its __init__ says what the tool does).

    python3 tools/conformance.py                   # 6.1: writes docs/conformance.md
    python3 tools/conformance.py --tree 6.12 --jobs 2   # docs/conformance-6.12.md
    python3 tools/conformance.py --only test_global_data,test_map_in_map
"""
import os
import sys

TOOLS = os.path.dirname(os.path.abspath(__file__))
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)
if os.path.dirname(TOOLS) not in sys.path:
    sys.path.insert(1, os.path.dirname(TOOLS))

from conformance import main  # noqa: E402  (the package beside this file)

if __name__ == "__main__":
    sys.exit(main())
