"""PNG figures, with matplotlib (the `plot` extra) when it is installed.

Each figure's title says which kernel and environment it came from, and under
emulation that its times are not the host's. The PNG carries the run's id in its
metadata (a tEXt chunk), so a figure can be traced to the run that drew it.
"""
import os

from ..errors import DependencyError


def available():
    """None when matplotlib imports, else why not."""
    try:
        import matplotlib  # noqa: F401 - only whether it imports
    except ImportError as e:
        return f"matplotlib is not installed ({e}); pip install 'pybpf[plot]'"
    return None


def draw_all(out, doc):
    """Draw every figure of doc into out; returns the paths written."""
    if available():
        raise DependencyError(available())
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    where = f"Linux {doc['machine']['kernel']}, {doc['machine']['environment']}"
    if doc.get("emulated"):
        where += " (emulated: compare ratios, not times)"
    paths = []
    for s in doc["sections"]:
        for f in s["figures"]:
            fig, ax = plt.subplots(figsize=(8, 5))
            (_stacked if f["kind"] == "stacked" else _lines)(ax, f)
            ax.set_title(f"{s['key']}: {f['title']}\n{where}", fontsize=10)
            ax.set_xlabel(f["xlabel"])
            ax.set_ylabel(f["ylabel"])
            if f["logx"]:
                ax.set_xscale("log", base=2)
            if f["logy"]:
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = os.path.join(out, f["name"] + ".png")
            fig.savefig(path, dpi=100, metadata={"Description": f"pybpf run {doc['run_id']}"})
            plt.close(fig)
            paths.append(path)
    return paths


def _lines(ax, f):
    for s in f["series"]:
        if not s["points"]:
            continue
        xs, ys, err = zip(*s["points"])
        style = dict(linestyle="--", marker="s") if s["thesis"] else dict(marker="o")
        ax.errorbar(xs, ys, yerr=err if any(err) else None, label=s["label"], capsize=3,
                    **style)


def _stacked(ax, f):
    """Grouped stacked bars: one group per category, one bar per method, one layer per
    stack; series labels are "method|layer"."""
    methods = list(dict.fromkeys(s["label"].split("|")[0] for s in f["series"]))
    width = 0.8 / max(1, len(methods))
    colors = {}
    for mi, method in enumerate(methods):
        bottom = [0.0] * len(f["categories"])
        for layer in f["stacks"]:
            s = next((x for x in f["series"] if x["label"] == f"{method}|{layer}"), None)
            if s is None:
                continue
            color = colors.setdefault(layer, f"C{len(colors)}")
            for i, y, _ in s["points"]:
                i = int(i)
                ax.bar(i + mi * width, y, width * 0.95, bottom=bottom[i], color=color,
                       label=layer if mi == 0 and i == 0 else None, edgecolor="black",
                       linewidth=0.3)
                bottom[i] += y
        for i in range(len(f["categories"])):
            ax.text(i + mi * width, bottom[i], method, rotation=90, fontsize=6,
                    ha="center", va="bottom")
    ax.set_xticks([i + width * (len(methods) - 1) / 2 for i in range(len(f["categories"]))])
    ax.set_xticklabels(f["categories"])
