"""The built wheel carries compiled BPF objects, so an installation needs no clang."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_wheel_installs_and_loads_shipped_object_without_clang(tmp_path, clang):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), ROOT], check=True)
    (wheel,) = dist.glob("pybpf-*.whl")
    # One set of objects per architecture (pybpf/shipped.py), in a wheel of < 1 MB.
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".bpf.o")}
    assert shipped == {f"pybpf/bpf/{arch}/{name}.bpf.o"
                       for arch in ("aarch64", "ppc64le", "riscv64", "s390x", "x86_64")
                       for name in ("filterreduce", "readcount")}
    assert wheel.stat().st_size < 1 << 20
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q",
                    "--no-deps", str(wheel)], check=True)
    # Only the venv on PATH: no clang, no llvm, nothing of the build machine.
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path)}
    assert shutil.which("clang", path=env["PATH"]) is None
    path = subprocess.run([python, "-m", "pybpf.shipped", "readcount"], env=env,
                          cwd=str(tmp_path), capture_output=True, text=True, check=True)
    assert path.stdout.startswith(str(venv))  # the installed copy, not the source tree
    proc = subprocess.run([python, "-m", "pybpf", "load", path.stdout.strip(), "--json"],
                          env=env, cwd=str(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [p["name"] for p in doc["programs"]] == ["count_read"]
    assert doc["programs"][0]["type"] == "tracepoint"
