"""Metadata is in setup.cfg. This file only adds a build step: compile the BPF
programs in programs/ into the package (pybpf/bpf/*.bpf.o), so installing the wheel
needs no clang."""
import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools"))
import build_programs  # noqa: E402


class BuildWithPrograms(build_py):
    def run(self):
        super().run()
        build_programs.build(os.path.join(self.build_lib, "pybpf", "bpf"))


setup(cmdclass={"build_py": BuildWithPrograms})
