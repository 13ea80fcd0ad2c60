"""The user-space reference computation and the data generator, which the kernel
pipeline's tests and benchmark rely on."""
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.errors import PipelineError
from pybpf.filterreduce import expr, reference, sample
from pybpf.filterreduce.layout import INT64_MAX, INT64_MIN

RULES = b"12 -7 --3 4-5 x9y 00012 -0"


def test_the_number_rules():
    assert list(reference.numbers([RULES])) == [12, -7, -3, 4, -5, 9, 12, 0]


def test_a_file_may_end_inside_a_number():
    assert list(reference.numbers([b"1 2", b"3-", b"-45"])) == [1, 23, -45]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(1, 50), max_size=10))
def test_chunk_edges_do_not_change_the_numbers(data, cuts):
    whole = list(reference.numbers([data]))
    chunks, at = [], 0
    for n in cuts:
        chunks.append(data[at:at + n])
        at += n
    chunks.append(data[at:])
    assert list(reference.numbers(chunks)) == whole


def test_compute_counts_out_of_range_numbers_apart():
    data = f"{INT64_MAX} {INT64_MIN} {INT64_MAX + 1} {INT64_MIN - 1} 5".encode()
    res = reference.compute([data])
    assert (res.numbers_seen, res.numbers_out_of_range, res.numbers_kept) == (5, 2, 3)
    assert res.sum == INT64_MAX + INT64_MIN + 5 and res.min == INT64_MIN
    assert res.max == INT64_MAX


def test_compute_filters_with_python_meaning():
    res = reference.compute([RULES], "x % 3 == 0 and x < 0")
    assert (res.numbers_kept, res.sum, res.min, res.max, res.avg) == (1, -3, -3, -3, -3.0)
    none = reference.compute([RULES], "x > 100")
    assert (none.count, none.min, none.max, none.avg) == (0, None, None, None)


def test_generate_writes_exactly_size_bytes(tmp_path):
    path = tmp_path / "n.txt"
    for size in (0, 1, 4095, 4097, 100_000):
        sample.generate(path, size, seed=size)
        assert os.path.getsize(path) == size


def test_generate_honours_range_negatives_and_separators(tmp_path):
    path = tmp_path / "n.txt"
    sample.generate(path, 200_000, low=10, high=20, negatives=0.5, separators=(b",", b"\r\n"))
    data = path.read_bytes()
    nums = list(reference.numbers([data]))[:-1]       # the last may be cut short
    assert all(10 <= abs(x) <= 20 for x in nums)
    assert 0.4 < sum(x < 0 for x in nums) / len(nums) < 0.6
    assert set(data) <= set(b"0123456789-,\r\n")


@pytest.mark.parametrize("factor", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_generate_hits_the_filter_factor(tmp_path, factor):
    path = tmp_path / "n.txt"
    sample.generate(path, 300_000, filter="x >= 500000", filter_factor=factor, seed=3)
    nums = list(reference.numbers([path.read_bytes()]))[:-1]
    dropped = sum(not x >= 500000 for x in nums) / len(nums)
    assert abs(dropped - factor) < 0.02


@pytest.mark.parametrize("kwargs, words", [
    ({"size": -1}, "must not be negative"),
    ({"low": 5, "high": 1}, "value range"),
    ({"negatives": 2}, "share from 0 to 1"),
    ({"separators": (b"1",)}, "contain no digits"),
    ({"filter": "x > 10**7", "filter_factor": 0.5}, "keeps"),
    ({"filter": "x > 1", "filter_factor": 1.5}, "from 0 to 1"),
])
def test_generate_refuses_bad_arguments(tmp_path, kwargs, words):
    args = dict(size=100)
    args.update(kwargs)
    with pytest.raises(PipelineError, match=words):
        sample.generate(tmp_path / "n.txt", **args)
