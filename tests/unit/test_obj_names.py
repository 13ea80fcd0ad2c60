"""Object names are checked byte by byte, as the kernel's bpf_obj_name_cpy() checks
them, and the refusal names the byte (and the character it belongs to)."""
import pytest

import pybpf
from pybpf.kernel.bpf import NAME_BYTES, obj_name


@pytest.mark.parametrize("name, raw", [
    ("counts", b"counts"), ("a.b_C9", b"a.b_C9"), ("x" * 15, b"x" * 15), ("", b""),
    (b"caf\xe9", b"caf\xe9"),  # Latin-1 letters are alphanumeric to the kernel
    ("count_r\udce9ad", b"count_r\xe9ad"),  # an ELF name decoded with surrogateescape
])
def test_names_the_kernel_accepts(name, raw):
    assert obj_name(name) == raw


@pytest.mark.parametrize("name, message", [
    ("café", r"byte 0xa9 \(in 'é', UTF-8 c3 a9\)"),  # not '©', what 0xa9 is in Latin-1
    ("ª²", r"byte 0xaa \(in 'ª', UTF-8 c2 aa\)"),  # Unicode letters, not the kernel's
    ("my-map", r"byte 0x2d \('-'\)"),
    ("a\0b", r"byte 0x00"),
    (b"a\xd7", r"byte 0xd7 at offset 1"),  # the multiplication sign: not a letter
    ("x" * 16, r"is 16 bytes; the kernel takes at most 15"),
    ("\ud800", r"cannot be encoded"),
    (5, r"a str or bytes, not int"),
])
def test_names_the_kernel_refuses_name_the_byte(name, message):
    with pytest.raises(pybpf.InputError, match=message):
        obj_name(name)


def test_the_accepted_bytes_are_the_kernels_table():
    """lib/ctype.c: ASCII alphanumerics, and Latin-1 letters 0xC0-0xFF but for the
    multiplication and division signs; plus '_' and '.'."""
    expected = {ord(c) for c in "_."} | set(range(0x30, 0x3A)) | set(range(0x41, 0x5B)) | \
        set(range(0x61, 0x7B)) | set(range(0xC0, 0x100)) - {0xD7, 0xF7}
    assert NAME_BYTES == expected
