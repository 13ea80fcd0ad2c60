"""The run's results as report.md, one CSV per experiment and results.json.

Every cell is rendered from results.json's rows by the section's columns, so the
report holds no number the JSON does not (the test suite re-renders and compares).
"""
import csv
import json
import os

from .sections import Column

EMULATED_NOTE = ("Measured under QEMU's software emulation (TCG): absolute times are "
                 "not comparable with the host's, ratios within this report are.")


def columns(table):
    return [Column(**c) if isinstance(c, dict) else c for c in table["columns"]]


def render_table(table):
    cols = columns(table)
    head = [c.header + (" (thesis)" if c.thesis and "thesis" not in c.header else "")
            for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    for row in table["rows"]:
        lines.append("| " + " | ".join(c.cell(row) for c in cols) + " |")
    if table.get("caption"):
        lines += ["", f"_{table['caption']}._"]
    return lines


def _clock(seconds):
    return f"{int(seconds) // 60} min {int(seconds) % 60} s"


def _share(noise):
    return "(too short to measure)" if noise is None else f"{noise:.1%} of the CPUs"


def markdown(doc):
    m = doc["machine"]
    out = ["# The e2BPF thesis's evaluation, re-run by pybpf", "",
           f"Run `{doc['run_id']}`, {doc['started']} UTC, the {doc['grid']['name']} grid, "
           f"{_clock(doc['seconds'])}.", "",
           f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gb']} GB, Linux "
           f"{m['kernel']} ({m['machine']}), Python {m['python']}; {m['environment']}.", "",
           f"Noise: other processes used {_share(doc['noise'])} over the run (per "
           f"experiment below).", ""]
    if doc.get("emulated"):
        out += [f"**{EMULATED_NOTE}**", ""]
    out += [f"Beside ours, the thesis's numbers where its text gives them ({doc['thesis']}).",
            ""]
    for s in doc["sections"]:
        out += [f"## {s['key']} {s['title']} (thesis: {s['thesis_ref']})", ""]
        if s["skipped"]:
            out += [f"Not measured on this kernel: {s['skipped']}.", ""]
            continue
        out += [f"_{_clock(s['seconds'])}, other processes used {_share(s['noise'])}; CSV: "
                f"{s['slug']}.csv._", ""]
        for t in s["tables"]:
            out += render_table(t) + [""]
        for f in s["figures"]:
            if doc["plots"]:
                out += [f"![{f['title']}]({f['name']}.png)", ""]
        out += [p + "\n" for p in s["text"]]
    if not doc["plots"]:
        out += [f"No plots: {doc['plots_missing']}.", ""]
    return "\n".join(out).rstrip() + "\n"


def write_csv(path, section):
    keys = ["table"]
    for t in section["tables"]:
        for row in t["rows"]:
            keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, keys, restval="")
        w.writeheader()
        for i, t in enumerate(section["tables"]):
            for row in t["rows"]:
                w.writerow(dict(row, table=i + 1))


def write(out, doc):
    """results.json, report.md and the CSVs into directory out; returns report.md's path."""
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1, default=str)
    for s in doc["sections"]:
        if not s["skipped"]:
            write_csv(os.path.join(out, s["slug"] + ".csv"), s)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write(markdown(doc))
    return path
