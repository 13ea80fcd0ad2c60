"""tools/build-kernel's own logic, on a tiny stand-in for a kernel source tarball: the
patch step (a patch that does not apply names itself and the source; a changed patch
set is reversed and re-applied in place, for an incremental build), the check that the
config fragment survived olddefconfig, and the message for missing build tools."""
import io
import os
import tarfile
from types import SimpleNamespace

import pytest

from toolbox import load_tool, tool_path

ORIGINAL = "int copyout(void);\nint copyin(void);\n"


def make_patch(old, new, path="lib/iov_iter.c"):
    """A unified diff of one whole-file change (both files two lines long)."""
    lines = [f"--- a/{path}\n", f"+++ b/{path}\n", "@@ -1,2 +1,2 @@\n"]
    lines += [f"-{line}\n" for line in old.splitlines()]
    lines += [f"+{line}\n" for line in new.splitlines()]
    return "A note above the diff, as kernel-config's patches have.\n\n" + "".join(lines)


@pytest.fixture
def tool():
    return load_tool("build-kernel")


@pytest.fixture
def source(tmp_path):
    """inputs(patch texts...) -> what patch_tree needs, for a tarball holding one
    file, linux-source-6.1/lib/iov_iter.c."""
    tool_path("xz", "xz (xz-utils) is not installed: tools/build-kernel's tar -xJf needs it")
    tarball = tmp_path / "linux-source-6.1.tar.xz"
    with tarfile.open(tarball, "w:xz") as tar:
        info = tarfile.TarInfo("linux-source-6.1/lib/iov_iter.c")
        info.size = len(ORIGINAL)
        tar.addfile(info, io.BytesIO(ORIGINAL.encode()))

    def inputs(*texts):
        folder = tmp_path / f"patches-{len(list(tmp_path.glob('patches-*')))}"
        folder.mkdir()
        paths = []
        for n, text in enumerate(texts):
            paths.append(str(folder / f"{n:04d}.patch"))
            (folder / f"{n:04d}.patch").write_text(text)
        return SimpleNamespace(package="linux-source-6.1", version="6.1.999-1",
                               tarball=str(tarball), patches=paths)
    return inputs


def source_text(tree):
    return (tree / "src" / "lib" / "iov_iter.c").read_text()


def test_patches_apply_and_a_changed_set_replaces_the_old_one(tool, source, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    noinline = "static noinline int copyout(void);\nint copyin(void);\n"
    tool.patch_tree(source(make_patch(ORIGINAL, noinline)), str(tree))
    assert source_text(tree) == noinline
    marker = tree / "src" / "untouched"
    marker.write_text("kept")  # the tree is patched in place, not extracted anew
    other = "int copyout(void);\nstatic noinline int copyin(void);\n"
    tool.patch_tree(source(make_patch(ORIGINAL, other)), str(tree))
    assert source_text(tree) == other and marker.exists()
    tool.patch_tree(source(), str(tree))
    assert source_text(tree) == ORIGINAL


def test_a_patch_that_does_not_apply_names_itself_and_the_source(tool, source, tmp_path,
                                                                 capfd):
    tree = tmp_path / "tree"
    tree.mkdir()
    bad = source(make_patch("int something_else(void);\nint copyin(void);\n", ORIGINAL))
    with pytest.raises(SystemExit) as exit_info:
        tool.patch_tree(bad, str(tree))
    assert exit_info.value.code == 1
    err = capfd.readouterr().err
    assert f"patch {os.path.relpath(bad.patches[0], tool.REPO)} does not apply to " \
           f"linux-source-6.1 6.1.999-1" in err
    assert "kernel-config/README.md says which kernels each patch fits" in err


def test_fragment_settings_are_read_as_kconfig_writes_them(tool):
    text = b'# why\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="-pybpf"\nCONFIG_D=m\n'
    assert tool.wanted_options(text) == {"CONFIG_A": "y", "CONFIG_B": "n",
                                         "CONFIG_C": '"-pybpf"', "CONFIG_D": "m"}


def test_missing_tools_without_root_name_the_apt_command(tool, monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SystemExit):
        tool.install(["dwarves", "linux-source-6.12"])
    assert "apt-get install -y --no-install-recommends dwarves linux-source-6.12" in \
        capsys.readouterr().err
