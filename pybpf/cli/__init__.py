"""``python -m pybpf``: the command line, one module per group of subcommands.

Each module in COMMANDS has ``register(subparsers)``, which adds its subcommands and
sets ``func`` on them; ``func(args)`` returns the exit status. Output is text for
people or, with ``--json``, one JSON document for programs.
"""
import argparse
import importlib
import json
import os
import sys

from ..errors import Error

COMMANDS = ["probe", "objects", "load", "run", "links", "filterreduce"]


class _Parser(argparse.ArgumentParser):
    """argparse, except that with --json anywhere on the command line a rejected
    argument is a JSON document on stdout too, as every other --json error is: a
    program reading the output never has to tell usage text from a report."""

    json_errors = False

    def error(self, message):
        if not _Parser.json_errors:
            super().error(message)
        emit_json({"error": f"{self.prog}: {message}", "stage": "arguments",
                   "usage": self.format_usage().strip()})
        self.exit(2)


def main(argv=None):
    given = sys.argv[1:] if argv is None else argv
    _Parser.json_errors = "--json" in given or "-j" in given
    parser = _Parser(
        prog="python -m pybpf", description="Load, inspect and probe BPF from Python.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: not an error
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Error, OSError) as e:  # what pybpf refused, and files it could not open
        print(f"pybpf {args.command}: error: {e}", file=sys.stderr)
        return 1


def emit_json(doc):
    """Print doc as JSON (the --json output of every subcommand)."""
    json.dump(doc, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
