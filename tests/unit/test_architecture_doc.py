"""docs/architecture.md's picture of the package matches the folders.

The layer diagram names, in its left column, every module and subpackage of pybpf/;
the kernel/ section names every module of pybpf/kernel/. A module added without a
line there, or a line left after its module went, fails here."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()
PACKAGE = ROOT / "pybpf"
LEFT_COLUMN = 29


def _diagram():
    layers = DOC[DOC.index("## Layers"):]
    return layers.split("```")[1]


def _modules(directory):
    names = {p.name for p in directory.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return names | {p.name + "/" for p in directory.iterdir()
                    if p.is_dir() and (p / "__init__.py").exists()}


def test_the_diagram_names_every_module_and_only_those():
    named = set()
    for line in _diagram().splitlines():
        named |= set(re.findall(r"\w+(?:\.py|/)", line[:LEFT_COLUMN]))
    actual = _modules(PACKAGE)
    assert sorted(actual - named) == [], "modules missing from the diagram"
    assert sorted(named - actual) == [], "the diagram names modules that do not exist"


def test_the_kernel_section_names_every_kernel_module():
    section = DOC[DOC.index("### kernel/"):]
    section = section[:section.index("\n### ", 1)]
    named = set(re.findall(r"`(\w+\.py)`", section))
    missing = sorted(_modules(PACKAGE / "kernel") - named)
    assert missing == [], f"kernel/ modules the architecture page does not describe: {missing}"
