"""Where each file lives: parsing what the caller says, and matching it to the workers
that are connected.

A file is named by the worker that holds it and its path there, either as a mapping
``{worker: [path, ...]}`` or as ``"worker:path"`` strings (the CLI's form). A worker
is its Dask name or its address (``tcp://10.0.0.2:40211``). The same path listed for
several workers is one file with replicas: it is read once, on any one of them.

Nothing here talks to a cluster: :func:`parse` turns the caller's words into
:class:`File` values, and :func:`assign` matches them to a snapshot of the workers
(address -> name), so both are tested without Dask.
"""
import dataclasses
import re
from typing import Dict, List, Optional, Tuple

from ..errors import InputError

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


@dataclasses.dataclass(frozen=True)
class File:
    """A path and the workers (names or addresses, as given) that hold a copy."""
    path: str
    holders: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Missing:
    """A file that was not read, the workers that held it, and why."""
    path: str
    holders: Tuple[str, ...]
    reason: str

    def to_dict(self):
        return {"path": self.path, "holders": list(self.holders), "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Task:
    """Files read by one task, on any one of the workers at these addresses."""
    files: Tuple[File, ...]
    addresses: Tuple[str, ...]

    @property
    def paths(self):
        return tuple(f.path for f in self.files)


def split(text):
    """(worker, path) from "worker:path"; the path must be absolute, since a worker's
    working directory is not the caller's."""
    if not isinstance(text, str):
        raise InputError(f"a file is named 'worker:path', got {text!r}")
    scheme = _SCHEME.match(text)
    start = scheme.end() if scheme else 0
    at = text.find(":/", start)
    if at <= 0 or at == start:
        raise InputError(f"{text!r}: name a file as WORKER:/absolute/path, where WORKER "
                         f"is a Dask worker's name or address")
    return text[:at], text[at + 1:]


def parse(files):
    """[File] from {worker: path or [paths]} or an iterable of "worker:path" strings,
    in the order given; a path listed for several workers is one File."""
    pairs = []
    if isinstance(files, dict):
        for worker, paths in files.items():
            for path in [paths] if isinstance(paths, str) else list(paths):
                pairs.append((worker, path))
    elif isinstance(files, str):
        pairs.append(split(files))
    else:
        try:
            pairs = [split(f) for f in files]
        except TypeError:
            raise InputError(f"files: a mapping of worker to paths, or 'worker:path' "
                             f"strings; got {type(files).__name__}") from None
    by_path: Dict[str, List[str]] = {}
    for worker, path in pairs:
        if not isinstance(worker, str) or not worker:
            raise InputError(f"a worker is named by its name or address (a string), "
                             f"got {worker!r}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InputError(f"{worker}:{path}: give the path on the worker as an "
                             f"absolute path")
        holders = by_path.setdefault(path, [])
        if worker not in holders:
            holders.append(worker)
    if not by_path:
        raise InputError("no files given")
    return [File(path, tuple(holders)) for path, holders in by_path.items()]


def resolve(holder, workers):
    """The address of the worker a holder names (its address, with or without
    tcp://, or its name), or None when no such worker is connected."""
    if holder in workers:
        return holder
    if "://" not in holder and f"tcp://{holder}" in workers:
        return f"tcp://{holder}"
    for address, name in workers.items():
        if str(name) == holder:
            return address
    return None


def assign(files, workers, refused=None, files_per_task=1):
    """([Task], [Missing]) for files on the workers {address: name}. refused:
    {address: why} for workers that cannot run the pipeline; a file whose holders are
    all absent or refused is Missing, with the reason per holder."""
    if not isinstance(files_per_task, int) or isinstance(files_per_task, bool) \
            or files_per_task < 1:
        raise InputError(f"files_per_task is a positive integer, got {files_per_task!r}")
    refused = refused or {}
    groups: Dict[Tuple[str, ...], List[File]] = {}
    missing = []
    for f in files:
        addresses, why = [], []
        for h in f.holders:
            address = resolve(h, workers)
            if address is None:
                why.append(f"no worker {h!r} is connected")
            elif address in refused:
                why.append(f"worker {h} cannot run the pipeline: {refused[address]}")
            elif address not in addresses:
                addresses.append(address)
        if addresses:
            groups.setdefault(tuple(sorted(addresses)), []).append(f)
        else:
            missing.append(Missing(f.path, f.holders, "; ".join(why)))
    tasks = []
    for addresses, group in groups.items():
        for i in range(0, len(group), files_per_task):
            tasks.append(Task(tuple(group[i:i + files_per_task]), addresses))
    return tasks, missing


def name_of(address, workers: Dict[str, Optional[str]]):
    """A worker's name when it has one, else its address."""
    name = workers.get(address)
    return str(name) if name not in (None, "") else address
