"""Safe output: write to a temporary name, then rename; never clobber finished work."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class OutputExistsError(FileExistsError):
    """An output already exists and the caller did not ask to overwrite it."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched, so a
    crash never leaves a half-written result under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should be readable like any file
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a whole output directory under a temporary name, then move it into place.

    Args:
        path: final directory.
        overwrite: replace an existing ``path``; otherwise refuse with
            :class:`OutputExistsError` before any work is done.

    The previous directory (if any) is only removed after the new one is
    complete, so a failure leaves earlier results intact.
    """
    path = Path(path)
    old = old_path(path)
    empty_trash(path)
    if old.exists():  # an earlier replacement was interrupted
        if path.exists():
            remove_tree(old)  # after its second rename: old is the superseded copy
        else:
            os.replace(old, path)  # between its two renames: put the previous result back
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        with terminate_as_exit():
            yield tmp
        if path.exists():
            os.replace(path, old)
            os.replace(tmp, path)
            remove_tree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def old_path(path: str | os.PathLike) -> Path:
    """Where a previous result waits (hidden, next to ``path``) until its replacement is complete."""
    path = Path(path)
    return path.with_name(f".{path.name}.old")


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a directory; it leaves its name first, so an interruption never leaves a
    half-deleted copy under ``path`` (only a hidden ``.NAME.*.trash`` that :func:`empty_trash`
    removes)."""
    path = Path(path)
    if not path.exists():
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".trash", dir=path.parent))
    os.replace(path, trash)  # a directory may replace an empty one
    shutil.rmtree(trash, ignore_errors=True)


def empty_trash(path: str | os.PathLike) -> None:
    """Finish deletions of :func:`remove_tree` that an interruption cut short."""
    path = Path(path)
    for trash in path.parent.glob(f".{glob.escape(path.name)}.*.trash"):
        shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """While active, SIGTERM raises ``SystemExit(143)`` so ``finally`` clauses clean up
    (SIGINT already raises KeyboardInterrupt). Only the main thread can handle signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
