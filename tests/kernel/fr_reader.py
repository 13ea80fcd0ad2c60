"""A tenant in a process of its own, for the multi-process pipeline tests:

    python fr_reader.py DIR FILE FILTER PARSER [PAUSE [OVERRIDE]]

joins the pipeline pinned under DIR, brings its own filter (a stage in a slot of
its own), reads FILE through it (sleeping PAUSE seconds between reads, if given;
skipping the copies when OVERRIDE is 1) and prints the result as JSON. "-" as FILTER
keeps every number.
"""
import json
import sys
import time

from pybpf.filterreduce import FilterReduce, Pipeline


def main(directory, path, flt, parser, pause="0", override="0"):
    pause = float(pause)
    with Pipeline.join(directory) as p, \
            FilterReduce(None if flt == "-" else flt, parser=parser, chunk=4096,
                         override=override == "1", pipeline=p) as fr:
        print(json.dumps({"ready": True, "slot": fr.slot}), flush=True)
        progress = (lambda done, total: time.sleep(pause)) if pause else None
        res = fr.read(path, progress=progress)
        print(json.dumps(res.to_dict()), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
