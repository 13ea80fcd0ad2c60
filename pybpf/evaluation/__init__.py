"""The e2BPF thesis's evaluation (its chapter 6), re-run by pybpf on today's kernels:
``python -m pybpf bench thesis``.

One module per experiment, in the thesis's numbering: verification (6.2.1),
helpers (6.2.2), tailcalls (6.2.3), override (6.2.4), pipeline (6.3), costs (6.4).
Each measures its grid (grid.py) and returns a Section (sections.py) of tables,
figures and the raw samples; runner.py runs them with progress and the machine's
noise; report.py and plots.py write report.md, CSVs and PNGs from the same results;
thesis.py holds the thesis's own numbers set beside ours; vm.py runs it all in the
VM tiers. Nothing here is imported by the rest of pybpf.
"""
