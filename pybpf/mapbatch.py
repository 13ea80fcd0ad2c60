"""Batch operations of keyed maps: many elements per bpf(2) call.

A mixin of pybpf.maps.KeyedMap (it uses the map's codecs and ElemOps); on kernels or
map types without batch commands each operation falls back to one syscall per key.
"""
import ctypes
import errno

from . import args
from .errors import ENOTSUPP, BPFError, InputError, MissingError
from .kernel import features
from .kernel.constants import BPF_ANY, BPF_EXIST, BPF_NOEXIST, Cmd

# Bytes of keys and values one batch syscall may read: a few MiB keep the syscalls few
# (100,000 small entries in one) without sizing buffers by max_entries x value size.
BATCH_BYTES = 4 << 20
EXIST_FLAGS = BPF_NOEXIST | BPF_EXIST  # the update flags that depend on the key's presence


class Batches:
    """lookup_batch(), update_batch(), delete_batch() for a KeyedMap."""

    def lookup_batch(self, batch_size=None, delete=False):
        """Every (key, value) pair, read (and with delete=True removed) in batches of at
        most batch_size entries per syscall, and never more than BATCH_BYTES of keys and
        values (at least one entry); falls back to one syscall per key on kernels or map
        types without BPF_MAP_LOOKUP_BATCH."""
        if batch_size is not None:
            batch_size = args.integer(batch_size, "batch_size", 1)
        self.fd
        try:
            return self._lookup_batch(batch_size, delete)
        except BPFError as e:
            if not batch_unsupported(e):
                raise
        pairs = []
        for raw in list(self._raw_keys()):
            data = self._ops.lookup(raw)
            if data is None:
                continue
            pairs.append((self._key.decode(raw), self._value.decode(data)))
            if delete:
                self._ops.delete(raw)
        return pairs

    def _lookup_batch(self, batch_size, delete):
        ks, vs = self.key_size, self._value.size
        # Sized by max_entries alone, a batch of large values would want gigabytes.
        count = max(1, min(batch_size or self.max_entries, self.max_entries,
                           BATCH_BYTES // (ks + vs)))
        cmd = Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else Cmd.MAP_LOOKUP_BATCH
        # The resume token is a bucket index (u32) for hash maps and a key for others.
        token_size = max(ks, 8)
        in_batch, out_batch = None, ctypes.create_string_buffer(token_size)
        pairs, keys = [], None
        while True:
            if keys is None:  # decoding copies, so one pair of buffers serves every batch
                keys = ctypes.create_string_buffer(count * ks)
                values = ctypes.create_string_buffer(count * vs)
            try:
                n, done = self._ops.batch(cmd, in_batch, out_batch, keys, values, count)
            except BPFError as e:
                if e.errno == errno.ENOSPC and getattr(e, "batch_count", 0) == 0:
                    count, keys = count * 2, None  # a hash bucket holds more than a batch
                    continue
                raise
            # Decode straight from the ctypes buffers (no copy of the whole batch).
            pairs.extend(zip(self._key.decode_many(memoryview(keys).cast("B"), n),
                             self._value.decode_many(memoryview(values).cast("B"), n)))
            if done:
                return pairs
            in_batch = ctypes.create_string_buffer(out_batch.raw, token_size)

    def update_batch(self, items, flags=BPF_ANY):
        """Store many (key, value) pairs (a dict or iterable of pairs) in one syscall.

        The kernel's batch update takes no BPF_NOEXIST/BPF_EXIST (EINVAL), so with
        those flags the pairs go one syscall each; either way a failure stops at the
        pair that failed, with the pairs before it stored."""
        pairs = _pairs(items)
        flags = args.integer(flags, "flags", 0)
        self.fd
        if not pairs:
            return
        keys = b"".join(self._enc_key(k) for k, _ in pairs)
        values = b"".join(self._value.encode(v) for _, v in pairs)
        if not flags & EXIST_FLAGS:
            try:
                self._ops.batch(Cmd.MAP_UPDATE_BATCH, None, None, keys, values,
                               len(pairs), flags)
                return
            except BPFError as e:
                if not batch_unsupported(e):
                    done = getattr(e, "batch_count", len(pairs))
                    raise self._write_error(e, pairs[done][0] if done < len(pairs) else None,
                                            flags) from None
        for k, v in pairs:
            self.update(k, v, flags)

    def delete_batch(self, keys):
        """Delete many keys in one syscall; KeyError names the first missing key."""
        if not hasattr(keys, "__iter__"):
            raise InputError(f"delete_batch() takes an iterable of keys, not {keys!r}")
        keys = list(keys)
        self.fd
        if not keys:
            return
        raw = b"".join(self._enc_key(k) for k in keys)
        try:
            self._ops.batch(Cmd.MAP_DELETE_BATCH, None, None, raw, None, len(keys))
        except BPFError as e:
            if e.errno == errno.ENOENT:
                raise MissingError(keys[getattr(e, "batch_count", 0)]) from None
            if not batch_unsupported(e):
                raise
            for k in keys:
                del self[k]


def _pairs(items):
    """(key, value) pairs from a dict or an iterable of pairs."""
    if isinstance(items, dict):
        return list(items.items())
    if not hasattr(items, "__iter__"):
        raise InputError(f"update_batch() takes a dict or (key, value) pairs, not {items!r}")
    pairs = [tuple(p) if hasattr(p, "__iter__") else p for p in items]
    wrong = [p for p in pairs if not isinstance(p, tuple) or len(p) != 2]
    if wrong:
        raise InputError(f"update_batch() takes (key, value) pairs, not {wrong[0]!r}")
    return pairs


def batch_unsupported(err):
    """The kernel lacks batch ops (EINVAL where features says so: before 5.6) or this
    map type has none (ENOTSUPP, EOPNOTSUPP)."""
    if err.errno in (ENOTSUPP, errno.EOPNOTSUPP):
        return True
    return err.errno == errno.EINVAL and not features.have("map_batch")
