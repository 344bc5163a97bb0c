"""Safe output: checked before any work, never replaced without ``force``, never half-written, one
writer at a time; what a killed run left behind is swept by the next one.

- :func:`check_writable` refuses an output path up front (one UserError naming it).
- :func:`atomic_path` writes through a temporary beside the target, renamed into place at the end.
- :func:`output_lock` holds an exclusive lock on an output while it is written.
- :func:`temp_folder` is a scratch folder in the system temp dir, removed on exit.
- :func:`sweep_stale_temps` removes the temporaries above whose process is gone (``kill -9``).

Temporaries carry their writer's pid: files ``.<name>.~<pid>~<random><suffix>`` beside their target,
folders ``avatarcine_<purpose>_pid<pid>_<random>`` in the system temp dir.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from motion.errors import UserError

TEMP_FILE = re.compile(r"^\..+\.~(\d+)~[a-z0-9_]{8}(\.[^.]+)?$")       # mkstemp adds 8 random characters
TEMP_FOLDER = re.compile(r"^avatarcine_[a-z]+_pid(\d+)_[a-z0-9_]{8}$")
LOCK_SUFFIX = ".lock"
# errors of the place written to (not of the data): reported as one line naming the output
_PLACE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG}


def _nearest_existing(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path(path.absolute().anchor)


def check_writable(path: str | os.PathLike, force: bool = False, *, folder: bool = False,
                   suffixes: Iterable[str] | None = None) -> Path:
    """Check an output path before any work is done; return it as a Path. Creates nothing.

    Refuses (UserError naming ``path``): a file output whose extension is not in ``suffixes``
    (lower case, with the dot); a parent that is a file; an existing file where a ``folder`` is
    needed or an existing folder where a file is; an existing output without ``force``; a place
    this process cannot write (the nearest existing parent, and an existing output folder).
    """
    path = Path(path)
    if suffixes is not None and not folder:
        suffixes = tuple(suffixes)
        if path.suffix.lower() not in suffixes:
            raise UserError(path, f"output must end in {' or '.join(suffixes)}, got "
                                  f"{path.suffix or 'no extension'}")
    parent = _nearest_existing(path)
    if not parent.is_dir():
        raise UserError(path, f"cannot be written: {parent} is a file, not a folder")
    if path.exists():
        if folder and not path.is_dir():
            raise UserError(path, "is a file; a folder is needed here")
        if not folder and path.is_dir():
            raise UserError(path, "is a folder; a file is needed here")
        if not force:
            raise UserError(path, "already exists; pass --force to overwrite")
    for place in [parent] + ([path] if folder and path.is_dir() else []):
        if not os.access(place, os.W_OK | os.X_OK):
            raise UserError(path, f"cannot be written: no permission to write in {place}")
    return path


def make_parents(path: str | os.PathLike) -> list[Path]:
    """Create the missing parent folders of ``path``; returns those created (outermost first)."""
    missing = [p for p in Path(path).absolute().parents if not p.exists()][::-1]
    for p in missing:
        p.mkdir(exist_ok=True)
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (innermost first) that are empty; leave the others."""
    for p in reversed(folders):
        with contextlib.suppress(OSError):
            p.rmdir()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary keeps the target's suffix so writers that pick a format by extension work.
    Without ``force`` an output that appears meanwhile (another process) is not replaced. If the
    block fails, the temporary and any parent folder created for it are removed.
    """
    path = check_writable(path, force)
    created = make_parents(path)
    tmp, done = None, False
    try:
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.~{os.getpid()}~", suffix=path.suffix or ".tmp",
                                        dir=path.parent)
            os.close(fd)
            tmp = Path(name)
            yield tmp
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
            _publish(tmp, path, force)
            done = True
        except OSError as exc:
            if exc.errno not in _PLACE_ERRORS:
                raise
            raise UserError(path, f"could not be written ({exc.strerror})") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if not done:
            remove_empty(created)


def _publish(tmp: Path, path: Path, force: bool) -> None:
    """Rename ``tmp`` onto ``path``; without ``force`` never over an output created meanwhile."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)                       # fails if path exists: no replace
    except FileExistsError:
        raise UserError(path, "was created by another process while this one was writing it; "
                              "left as it is (pass --force to overwrite)") from None
    except OSError:                              # no hard links here (e.g. FAT): check, then rename
        if path.exists():
            raise UserError(path, "already exists; pass --force to overwrite") from None
        os.replace(tmp, path)


def _lock_holder(lock: Path) -> str:
    try:
        return lock.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of the output ``path`` (a file or a folder) for the block.

    The lock is ``.<name>.lock`` beside the output, holding the pid of its holder, locked with
    ``fcntl.flock``: the OS releases it when the holder dies, even by ``kill -9``, and the next
    holder takes the file over. A second process gets a UserError naming the holder's pid. On exit
    the lock file is removed, and so are the parent folders created for it and, when the block
    failed, an output folder it created that is still empty. Where there is no ``fcntl``
    (Windows) the pid file is written but not enforced.
    """
    path = Path(path)
    created = make_parents(path)
    existed = path.exists()
    lock = path.parent / f".{path.name}{LOCK_SUFFIX}"
    try:
        fd = _acquire(lock, path)
        try:
            yield path
        except BaseException:
            if not existed and path.is_dir():
                remove_empty([path])
            raise
        finally:
            lock.unlink(missing_ok=True)
            os.close(fd)
    finally:
        remove_empty(created)


def _acquire(lock: Path, path: Path) -> int:
    try:
        import fcntl
    except ImportError:
        fcntl = None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(path, f"cannot be written ({exc.strerror}: {lock})") from None
        if fcntl is None:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(path, f"is being written by another avatarcine process (pid {_lock_holder(lock)}); "
                                  "wait for it to finish or stop it") from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break                            # still the file at that name: ours
        except FileNotFoundError:
            pass
        os.close(fd)                             # its last holder removed it meanwhile: take the new one
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _alive(pid: int) -> bool:
    """Whether process ``pid`` may still run (unknown counts as alive: never sweep a live writer's files)."""
    if pid == os.getpid() or os.name == "nt":    # Windows: os.kill would terminate it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def sweep_stale_temps(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Remove our temporaries in ``folder`` (and below it when ``recursive``) whose writing process
    is gone: atomic-write files ``.<name>.~<pid>~*`` and temp folders ``avatarcine_<purpose>_pid<pid>_*``.
    Returns what was removed."""
    removed = []
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            match = TEMP_FILE.match(name) or TEMP_FOLDER.match(name)
            if match and not _alive(int(match.group(1))):
                target = Path(root) / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
                removed.append(target)
        dirs[:] = [d for d in dirs if recursive and Path(root) / d not in removed]
    return removed


@contextlib.contextmanager
def temp_folder(purpose: str) -> Iterator[Path]:
    """A fresh folder ``avatarcine_<purpose>_pid<pid>_*`` in the system temp dir, removed when the block
    exits; the stale ones of killed runs are swept first. ``purpose``: lower-case letters."""
    base = Path(tempfile.gettempdir())
    sweep_stale_temps(base)
    tmp = Path(tempfile.mkdtemp(prefix=f"avatarcine_{purpose}_pid{os.getpid()}_", dir=base))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_npz(path: str | os.PathLike, arrays: dict[str, Any], force: bool = False) -> Path:
    """Write an npz atomically (np.savez_compressed); the name must end in .npz."""
    check_writable(path, force, suffixes=(".npz",))
    with atomic_path(path, force) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return Path(path)


def save_json(path: str | os.PathLike, data: Any, force: bool = True) -> Path:
    """Write JSON atomically, pretty-printed."""
    with atomic_path(path, force) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    return Path(path)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an npz (pickles allowed only for legacy object arrays) or raise a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(path, "no such file")
    try:
        with np.load(path, allow_pickle=True) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # numpy raises many types for a corrupt archive
        raise UserError(path, f"not a readable npz archive ({type(exc).__name__}: {exc})") from None
