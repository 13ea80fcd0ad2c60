"""tools/image-root's cache and arguments, and toolbox.setup_missing, without root: an
interrupted build must never be taken for a cached one (the tier itself is
tests/kernel/test_minimal_image.py)."""
import os

import pytest

import toolbox

image_root = toolbox.load_tool("image-root")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(image_root, "CACHE", str(tmp_path))
    return tmp_path


def test_a_finished_entry_is_renamed_into_place_and_then_reused(cache):
    with image_root._cache_entry("root-abc") as (final, tmp):
        assert tmp is not None and not os.path.exists(final)
        open(os.path.join(tmp, "marker"), "w").close()
    assert os.listdir(final) == ["marker"] and oct(os.stat(final).st_mode & 0o777) == "0o755"
    with image_root._cache_entry("root-abc") as (again, tmp):
        assert (again, tmp) == (final, None)


def test_an_interrupted_build_leaves_nothing_that_looks_cached(cache):
    with pytest.raises(KeyboardInterrupt):
        with image_root._cache_entry("root-abc") as (final, tmp):
            open(os.path.join(tmp, "half"), "w").close()
            raise KeyboardInterrupt
    assert sorted(os.listdir(cache)) == [".lock"]


def test_the_leftovers_of_a_killed_build_are_removed_by_the_next(cache):
    stale = cache / ".building-root-abc-x1"
    stale.mkdir()
    (stale / "half").write_text("")
    with image_root._cache_entry("root-abc") as (final, tmp):
        assert not stale.exists()
    assert sorted(os.listdir(cache)) == [".lock", "root-abc"]


def test_the_key_changes_with_each_input():
    base = image_root.root_path()
    assert base.startswith(os.path.join(image_root.CACHE, "bullseye-minbase-"))
    assert len({base, image_root.root_path(suite="bookworm"),
                image_root.root_path(variant="buildd"),
                image_root.root_path(packages=("python3", "gcc"))}) == 4
    assert image_root.root_path(packages=("b", "a")) == image_root.root_path(packages=("a", "b"))


@pytest.mark.parametrize("text, parsed", [
    ("/a:/b", ("/a", "/b", False)),
    ("/a:/b:ro", ("/a", "/b", True)),
    ("/a:/b:rw", ("/a", "/b", False)),
    ("image:/usr/x:/src/x:ro", ("image:/usr/x", "/src/x", True)),
])
def test_bind_arguments(text, parsed):
    assert image_root.parse_bind(text) == parsed


@pytest.mark.parametrize("text", ["/a", "/a:/b:rx", "/a:/b:ro:x"])
def test_bad_bind_arguments_are_refused(text):
    with pytest.raises(Exception, match=r"--bind \[image:\]SOURCE:INSIDE"):
        image_root.parse_bind(text)


def test_setup_missing_fails_on_the_host_and_skips_in_the_image(monkeypatch):
    monkeypatch.setattr(toolbox, "IN_MINIMAL_IMAGE", False)
    with pytest.raises(pytest.fail.Exception, match="^gcc is not installed$"):
        toolbox.setup_missing("gcc is not installed")
    monkeypatch.setattr(toolbox, "IN_MINIMAL_IMAGE", True)
    with pytest.raises(pytest.skip.Exception, match="runs on the host: gcc is not installed"):
        toolbox.setup_missing("gcc is not installed")
