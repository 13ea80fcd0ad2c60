"""docs/evaluation.md's tables are generated from the runs kept under
docs/evaluation/<kernel>/, and each kept report is the rendering of its own
results.json: no number in them is typed by hand."""
import json
import os

import pytest

from pybpf.evaluation import report
from toolbox import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEPT = os.path.join(ROOT, "docs", "evaluation")
doc_tool = load_tool("evaluation_doc")


def test_the_summary_tables_are_the_generators_output():
    assert doc_tool.main(["--check"]) == 0, "run python tools/evaluation_doc.py"


@pytest.mark.parametrize("name", [name for name, _ in doc_tool.RUNS])
def test_each_kept_report_renders_its_results(name):
    path = os.path.join(KEPT, name)
    with open(os.path.join(path, "results.json")) as f:
        doc = json.load(f)
    with open(os.path.join(path, "report.md")) as f:
        assert f.read() == report.markdown(doc)
    assert doc["grid"]["name"] == "full"
    for s in doc["sections"]:
        for fig in s["figures"] if doc["plots"] else []:
            assert os.path.exists(os.path.join(path, fig["name"] + ".png")), fig["name"]
