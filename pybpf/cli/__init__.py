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

# Every subcommand: the module that defines it and its one-line help. Only the module
# of the command given is imported (each CLI call is a whole process, and what it
# imports is most of its start-up); the others appear in --help from this table.
COMMANDS = {
    "probe": ("probe", "what this kernel supports, and which pipeline backend works"),
    "prog": ("objects", "list and inspect loaded BPF programs"),
    "map": ("objects", "list, inspect and dump loaded BPF maps"),
    "load": ("load", "load a clang-built BPF object and report what loaded"),
    "run": ("run", "load an object, attach its programs, run a command, print maps"),
    "link": ("links", "list and detach BPF links (attached programs)"),
    "attach": ("filterreduce", "attach the filter-reduce pipeline and read files "
                               "through it"),
    "detach": ("filterreduce", "remove a pipeline pinned with attach --pin"),
    "gen-numbers": ("filterreduce", "write a file of numbers (test data)"),
    "bench": ("bench", "re-run the e2BPF thesis's evaluation and write its report"),
}


def command_parser(sub, name, **kwargs):
    """The subparser of command name, with its help from COMMANDS."""
    return sub.add_parser(name, help=COMMANDS[name][1], **kwargs)


def _command_word(argv):
    """The subcommand named on the command line (the first word that is not an option),
    or None."""
    return next((a for a in argv if not a.startswith("-")), None)


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
    word = _command_word(given)
    chosen = COMMANDS[word][0] if word in COMMANDS else None
    if chosen is not None:     # the other commands' parsers would go unused
        try:
            importlib.import_module(f"{__name__}.{chosen}").register(sub)
        except Error as e:     # e.g. an architecture pybpf has no syscall numbers for
            print(f"pybpf {word}: error: {e}", file=sys.stderr)
            return 1
    else:                      # for --help and the error naming the commands
        for name in COMMANDS:
            command_parser(sub, name)
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
