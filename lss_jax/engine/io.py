"""Safe output: atomic files and exclusive ownership of an output.

Atomic: write to a temporary name in the target directory, then rename; a reader never sees a half-written
file, either the old one or the complete new one. Exclusive: :func:`exclusive_output` locks an output
(a generation directory or file, a model directory and its checkpoints, a report) before its first byte is
written, so that a second writer is refused at once instead of interleaving its files with the first's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

__all__ = ["ResourceLimitError", "atomic_path", "write_json", "save_npy", "save_npz", "save_figure", "sha256_file", "exclusive_output",
           "lock_holder", "lock_path", "OutputLockedError", "StaleLockWarning", "UnlockedOutputWarning"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the final file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy(path, array) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(array))


def save_npz(path, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def save_figure(fig, path, **kwargs) -> None:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks (checksums of models, chunks and checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def jsonable(obj):
    """Nested dicts/lists/arrays/numpy scalars -> plain Python; ``nan``/``inf`` -> ``None``.

    Example:
        >>> jsonable({"a": np.array([1.0, np.nan]), "b": np.int64(3)})
        {'a': [1.0, None], 'b': 3}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


class ResourceLimitError(ValueError):
    """A request larger than this machine's memory or disk: the message names the option that makes it fit.

    The command line exits with 2 for it, as for any other option it cannot accept (1 is for bad input files and
    failed runs)."""


# ----------------------------------------------------------------------------------------------- output locks
class OutputLockedError(RuntimeError):
    """Another process is writing the same output (its pid, host and start time are in the message)."""


class StaleLockWarning(UserWarning):
    """The lock of an output was left by a process that no longer runs; it was taken over."""


class UnlockedOutputWarning(UserWarning):
    """The filesystem of an output does not support locks: it is written without one."""


_HELD: dict[str, list] = {}  # lock file -> [fd, depth]: a process may take the lock of an output it holds again


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output: ``.NAME.lock`` next to it (so it guards a file, a directory, and the files
    that go with them, e.g. ``OUT.checkpoints/`` of a model ``OUT`` or the ``.OUT.parts/`` of a generated file).
    Symbolic links are resolved: two paths to one output share one lock."""
    path = Path(path).resolve()
    return path.parent / f".{path.name}.lock"


def _lock_owner(fd_or_path) -> dict:
    try:
        if isinstance(fd_or_path, int):
            text = os.pread(fd_or_path, 65536, 0).decode()
        else:
            text = Path(fd_or_path).read_text()
        owner = json.loads(text)
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(owner: dict) -> str:
    if not owner:
        return "a process that had not yet recorded itself"
    text = f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, started {owner.get('started', '?')}"
    return text + (f": {owner['command']}" if owner.get("command") else "")


def lock_holder(path: str | os.PathLike) -> dict | None:
    """Who holds the lock of output ``path`` now (``{"pid", "host", "started", "command"}``), or ``None``.

    Readers use it to refuse an output that is being written; it creates nothing.
    """
    import fcntl

    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        if str(lock) in _HELD:
            return None  # this process holds it
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _lock_owner(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_output(path: str | os.PathLike, *, what: str = "output", how_to_fix: str | None = None):
    """Own output ``path`` for the duration of the block: a second writer is refused at once.

    The lock is ``fcntl.flock`` on :func:`lock_path` (``.NAME.lock`` next to ``path``), taken before the first
    byte of the output is written and released (the file removed) when the block ends. The kernel drops the
    lock of a process that dies, however it dies; the file it leaves behind names that process, and the next
    writer takes it over with a :class:`StaleLockWarning`. The same process may take a lock it holds again
    (nested ``with`` blocks: the CLI, then the library function it calls).

    Raises:
        OutputLockedError: another process holds the lock; the message names it (pid, host, start time,
            command) and says what to do.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     with exclusive_output(Path(d) / "run"):
        ...         holder = lock_holder(Path(d) / "run")   # None: this process holds it
        ...     sorted(os.listdir(d))
        []
    """
    import datetime
    import fcntl
    import socket
    import sys

    lock = lock_path(path)
    key = str(lock)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield lock
        finally:
            _HELD[key][1] -= 1
        return
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _lock_owner(fd)
            os.close(fd)
            fix = how_to_fix or "wait for it to finish, or write to another path"
            raise OutputLockedError(f"{what} {path} is being written by another lss_jax process ({_describe(owner)}); "
                                    f"{fix}. (Lock file: {lock}.)") from None
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            with contextlib.suppress(OSError):
                os.unlink(lock)
            # a filesystem without locks (some network mounts): run as before rather than not at all
            warnings.warn(f"cannot lock {path} ({err.strerror}): this filesystem does not support file locks, so a "
                          "second writer of the same output would not be detected; run one writer at a time.",
                          UnlockedOutputWarning, stacklevel=3)
            yield None
            return
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder before us may have removed the file between our open and our flock: lock the file on disk
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        stale = _lock_owner(fd)
        if stale:
            warnings.warn(f"took over the lock of {path} left by {_describe(stale)}, which no longer runs; its partial "
                          "output is checked (and continued where the format allows) before anything is overwritten.",
                          StaleLockWarning, stacklevel=3)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
              "command": " ".join(["lss-jax" if sys.argv[0].endswith(("lss-jax", "__main__.py")) else
                                   Path(sys.argv[0]).name, *sys.argv[1:]])[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    _HELD[key] = [fd, 1]
    try:
        yield lock
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)  # before unlocking: a waiting writer then re-opens and locks a fresh file
        os.close(fd)  # releases the flock
