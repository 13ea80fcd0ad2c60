"""What the benchmarks record about the machine they ran on: the CPU's model name,
which docs/performance.md quotes beside every number."""
import platform


def cpu_model():
    """The first "model name" of /proc/cpuinfo, else the processor or machine name."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(doc, text, json_path=None, markdown_path=None):
    """Write a benchmark's document (JSON) and its Markdown where asked; print the text."""
    import json
    for target, content in ((json_path, json.dumps(doc, indent=1)), (markdown_path, text)):
        if target:
            with open(target, "w") as f:
                f.write(content)
    print(text)
