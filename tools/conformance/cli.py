"""Conformance of pybpf's object loader with libbpf on a real corpus.

    python3 tools/conformance.py                   # 6.1, full run, writes docs/conformance.md
    python3 tools/conformance.py --tree 6.12 --jobs 2   # writes docs/conformance-6.12.md
    python3 tools/conformance.py --only test_global_data,test_map_in_map
    python3 tools/conformance.py --tree 6.12 --every 4 --deadline 1800
    python3 tools/conformance.py --tree libbpf-tools   # docs/conformance-tools.md
"""
import argparse
import concurrent.futures
import json
import os
import signal
import sys
import time

from .build import build_loader, libbpf_version
from .corpus import LOAD_TIMEOUT, SetupError, prepare
from .toolscorpus import CORPORA, TOOLS_CORPUS, prepare_tools
from .load import inner, load_libbpf, load_pybpf
from .report import compare, machine_info, note_for, totals, write_markdown


def run(ws, names=None, jobs=2, timeout=LOAD_TIMEOUT, progress=None, deadline=None):
    """Compile and load names (default: all); returns the result document. With
    deadline (seconds from the start), no load starts after it, and the document
    holds only the objects loaded so far (meta "partial" says so); an interrupt
    (SIGINT/SIGTERM) ends the run the same way."""
    started = time.monotonic()
    tree = ws.tree_def
    names = names or ws.sources()
    loader = build_loader(ws.loader_workspace) if tree.libbpf == "tree" else None
    compiled = ws.objects(names, jobs)
    compile_seconds = round(time.monotonic() - started, 1)
    records = {n: {"object": n, "compiled": ok, "compile_error": err}
               for n, (ok, err) in compiled.items()}

    def load(name):
        if deadline is not None and time.monotonic() - started > deadline:
            return name, None, None, None
        obj, options = ws.obj_path(name), ws.options(name)
        return name, options, load_libbpf(obj, timeout, loader, options), \
            load_pybpf(obj, timeout, options)

    todo = [n for n in names if compiled[n][0]]
    partial = ""
    pool = concurrent.futures.ThreadPoolExecutor(jobs)
    try:
        for i, (name, options, lb, pb) in enumerate(pool.map(load, todo), 1):
            if lb is None:
                partial = f"stopped at the {deadline} s deadline"
                continue
            rec = records[name]
            rec.update(libbpf=lb, pybpf=pb, agree=compare(lb, pb))
            if options:
                rec["options"] = options
            rec["note"] = note_for(rec, tree.name)
            if progress:
                progress(f"[{i}/{len(todo)}] {name}: libbpf {_verdict(lb)}, "
                         f"pybpf {_verdict(pb)}{'' if rec['agree'] else '  <-- DISAGREE'}")
    except KeyboardInterrupt:
        partial = "interrupted"
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        pool.shutdown(wait=True)
    done = [n for n in names if not records[n]["compiled"] or "libbpf" in records[n]]
    if partial:
        loaded = sum(1 for n in done if records[n]["compiled"])
        partial += f": {loaded} of {len(todo)} compiled objects loaded, the rest left out"
    meta = dict(machine_info(tree, _libbpf_name(ws) if loader else None),
                compile_seconds=compile_seconds,
                total_seconds=round(time.monotonic() - started, 1), jobs=jobs)
    if partial:
        meta["partial"] = partial
    if tree.name != "6.1":
        meta["timeout"] = timeout
    return {"meta": meta, "totals": totals(records[n] for n in done),
            "objects": [records[n] for n in done]}


def _libbpf_name(ws):
    ws = ws.loader_workspace
    return (f"libbpf {libbpf_version(ws)} built from linux-source-{ws.tree_def.name}'s "
            f"tools/lib/bpf, loaded by tools/conformance/libbpf_load.c")


def _verdict(v):
    return "ok" if v["ok"] else "FAIL"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", choices=sorted(CORPORA), default="6.1",
                    help="the corpus: a kernel tree whose selftests are compiled (default "
                         "6.1), or libbpf-tools, the objects inside Debian's libbpf-tools "
                         "binaries (loaded with 6.12's libbpf)")
    ap.add_argument("--workdir", default=None,
                    help="where to extract, generate and compile (default "
                         + ", ".join(f"{t.default_workdir} for {n}" for n, t in CORPORA.items())
                         + ")")
    ap.add_argument("--jobs", type=int, default=2, help="parallel compiles/loads (default 2)")
    ap.add_argument("--timeout", type=int, default=LOAD_TIMEOUT,
                    help=f"seconds per load (default {LOAD_TIMEOUT})")
    ap.add_argument("--only", help="comma-separated object names (no .c)")
    ap.add_argument("--every", type=int, metavar="N",
                    help="a deterministic subset: every Nth source in name order")
    ap.add_argument("--deadline", type=int, metavar="SECONDS",
                    help="start no load after SECONDS; the report is then partial")
    ap.add_argument("--json", help="result file (default WORKDIR/results.json)")
    ap.add_argument("--docs", default=None,
                    help="markdown report (default the tree's docs/conformance*.md on a full "
                         "or --every run, none with --only)")
    ap.add_argument("--from-json", metavar="PATH",
                    help="only rewrite the markdown report from an earlier result file")
    ap.add_argument("--inner", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner:
        print(json.dumps(inner(*args.inner)))
        return 0
    tree = CORPORA[args.tree]
    workdir = args.workdir or tree.default_workdir
    command = " ".join(["python3 tools/conformance.py"] + list(
        argv if argv is not None else sys.argv[1:]))
    if args.from_json:
        with open(args.from_json) as f:
            doc = json.load(f)
        out = args.docs or CORPORA[doc["meta"].get("tree", "6.1")].docs
        write_markdown(doc, out, doc["meta"].get("command", command))
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        ws = prepare_tools(workdir) if tree is TOOLS_CORPUS else prepare(workdir, tree)
        names = args.only.split(",") if args.only else None
        if args.every:
            names = (names or ws.sources())[::args.every]
        doc = run(ws, names, args.jobs, args.timeout,
                  progress=lambda s: print(s, flush=True), deadline=args.deadline)
    except SetupError as e:
        print(f"conformance: {e}", file=sys.stderr)
        return 2
    doc["meta"]["command"] = command
    if args.every:
        doc["meta"]["subset"] = f"every {args.every}th source in name order"
        doc["meta"]["partial"] = (doc["meta"].get("partial", "") + "; " if
                                  doc["meta"].get("partial") else "") + doc["meta"]["subset"]
    json_path = args.json or os.path.join(workdir, "results.json")
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1)
    docs = args.docs if args.docs is not None else (None if args.only else tree.docs)
    if docs:
        write_markdown(doc, docs, command)
    t = doc["totals"]
    print(f"compiled {t['compiled']}/{t['sources']}, agree {t['agree']}, disagree "
          f"{t['disagree']} ({t['agreement_percent']}%), both load {t['both_load']}; "
          f"{doc['meta']['total_seconds']} s; results in {json_path}"
          + (f", report in {docs}" if docs else ""))
    return 0
