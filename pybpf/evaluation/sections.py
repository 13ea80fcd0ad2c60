"""What an experiment hands the report: a section of tables, figures and text.

Kept as plain data (dataclasses of numbers and strings) so that one run's results
can be written as JSON, rendered as Markdown and CSV, and plotted, each from the same
values: the report never computes a number the JSON does not hold.
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple


@dataclass
class Column:
    key: str                 # the row's key
    header: str
    digits: int = 2          # decimals shown; the CSV keeps the full value
    thesis: bool = False     # the thesis's number, not this run's

    def cell(self, row):
        value = row.get(self.key)
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.{self.digits}f}"
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return str(value)


@dataclass
class Table:
    columns: List[Column]
    rows: List[dict]
    caption: str = ""


@dataclass
class Series:
    label: str
    points: List[Tuple[float, float, float]]   # (x, y, error bar: standard deviation)
    thesis: bool = False


@dataclass
class Figure:
    name: str                # the PNG's file name, without .png
    title: str
    xlabel: str
    ylabel: str
    series: List[Series]
    kind: str = "line"       # line, bar (x is a category index), stacked
    logx: bool = False
    logy: bool = False
    categories: List[str] = field(default_factory=list)   # bar and stacked: x labels
    stacks: List[str] = field(default_factory=list)       # stacked: one series per layer


@dataclass
class Section:
    key: str                 # the thesis's numbering: "6.2.1"
    title: str
    thesis_ref: str          # "Table 6.1, Figure 6.2"
    tables: List[Table] = field(default_factory=list)
    figures: List[Figure] = field(default_factory=list)
    text: List[str] = field(default_factory=list)
    samples: Dict[str, list] = field(default_factory=dict)   # raw measurements
    skipped: Optional[str] = None
    seconds: float = 0.0
    noise: Optional[float] = None   # other processes' share of the CPUs while it ran
    runs: int = 0

    def to_dict(self):
        return dict(asdict(self), slug=self.slug)

    @property
    def slug(self):
        return "exp-" + self.key.replace(".", "_")
