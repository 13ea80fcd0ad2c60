"""Arguments argparse rejects are reported like every other error: with --json (or
-j) anywhere on the command line, as one JSON document on stdout; else argparse's
usage text on stderr. No kernel is needed: nothing runs past parsing."""
import json

import pytest

from pybpf import cli


@pytest.mark.parametrize("argv, message", [
    (["run", "--json", "--nosuch", "x.o"], "unrecognized arguments: --nosuch"),
    (["map", "dump", "--json"], "the following arguments are required"),
    (["prog", "-j", "nosuch"], "invalid choice"),
    (["--json"], "the following arguments are required: COMMAND"),
])
def test_with_json_a_rejected_argument_is_a_json_document(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert message in doc["error"] and doc["stage"] == "arguments"
    assert doc["usage"].startswith("usage: python -m pybpf") and err == ""


def test_without_json_argparse_speaks_as_usual(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--nosuch", "x.o"])
    out, err = capsys.readouterr()
    assert out == "" and "unrecognized arguments: --nosuch" in err and "usage:" in err
