"""One run per run directory, and no run over another's checkpoints.

A run holds an advisory lock (`fcntl.flock`) on the file `.run.lock` in its directory from before Hydra
writes `.hydra/` until it exits; the file records the holder (pid, host, start time) so a refusal can
name it, and is emptied when the run ends. A second run into a locked directory is refused; so is a new
run into a directory that holds another run's checkpoints, unless it continues that run
(`trainer.resume=DIR`).

A stale lock never blocks: the kernel drops a flock when its process ends, however it ends, so on this
host a free lock whose record was not emptied (the run was killed) is stale and taken over. A record left
by a run on another host cannot be checked from here: the directory is refused, naming that run and the
file to delete once it is known to be gone. On a shared filesystem whose flocks reach every host (NFS v4,
NFS v3 with lockd, Lustre mounted with `flock`) a live run elsewhere holds the lock and is refused like a
local one; where flocks stay on each host (NFS mounted `local_lock=flock` or `all`, Lustre `localflock`),
only the record tells them apart, which it does while a run is alive, so a crashed run on another host
leaves that file to delete by hand.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from seqmodels.errors import ConfigError

log = logging.getLogger("seqmodels")

LOCK_FILE = ".run.lock"


class RunDirectoryTaken(ConfigError):
    """The run directory belongs to another run (running, or finished with its checkpoints)."""


class _Held:
    def __init__(self, descriptor: int, created: bool) -> None:
        self.descriptor, self.created, self.count = descriptor, created, 1


_held: dict[str, _Held] = {}  # this process's locks, by the directory's real path


def _key(run_dir: Path) -> str:
    return os.path.realpath(run_dir)


def _record(descriptor: int) -> dict:
    """The holder a lock file names ({} when empty or unreadable)."""
    try:
        raw = os.pread(descriptor, 4096, 0)
        record = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _describe(record: dict) -> str:
    if not record:
        return "another run"
    return f"another run (pid {record.get('pid')} on {record.get('host')}, started {record.get('started')})"


FREE, HELD, NO_LOCKS = "free", "held", "no locks"


def _try_lock(descriptor: int) -> str:
    """Take the flock if it is free: FREE, HELD (by another process), or NO_LOCKS (a filesystem without
    flocks: the record alone decides)."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return HELD
    except OSError as error:
        if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            raise
        return NO_LOCKS
    return FREE


def _pid_exists(pid: object) -> bool:
    try:
        os.kill(int(pid), 0)  # type: ignore[call-overload]
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True  # a process of another user holds that pid
    return True


def _taken(run_dir: Path, lock: str, record: dict) -> RunDirectoryTaken | None:
    """Why `run_dir` belongs to another run (None if it does not): its lock is held, or its record names a
    run that may still be alive. On this host a free lock means its holder has ended (the kernel drops a
    dead process's lock); another host's record cannot be checked."""
    if lock == HELD:
        return RunDirectoryTaken(
            f"{run_dir} is in use by {_describe(record)}; give this run another directory (hydra.run.dir) "
            f"or wait for that run to end"
        )
    if not record:
        return None
    if record.get("host") == socket.gethostname():
        if lock == FREE or not _pid_exists(record.get("pid")):
            return None  # stale: that process is gone
        return RunDirectoryTaken(
            f"{run_dir} is in use by {_describe(record)}; give this run another directory (hydra.run.dir) "
            f"or wait for that run to end"
        )
    return RunDirectoryTaken(
        f"{run_dir} is in use by {_describe(record)}, which this host cannot check; give this run another "
        f"directory (hydra.run.dir), or delete {run_dir / LOCK_FILE} once that run is known to be gone"
    )


def check_free(run_dir: Path) -> None:
    """Refuse a directory another run holds, without creating or changing anything in it."""
    run_dir = Path(run_dir)
    if _key(run_dir) in _held:
        return
    try:
        descriptor = os.open(run_dir / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        refusal = _taken(run_dir, _try_lock(descriptor), _record(descriptor))
    finally:
        os.close(descriptor)  # closing drops the probe's own lock
    if refusal is not None:
        raise refusal


def check_not_another_runs(run_dir: Path, resume: Path | None) -> None:
    """Refuse a new run into a directory that holds another run's checkpoints; continuing that run
    (`trainer.resume` naming this directory or one of its checkpoints) is allowed."""
    checkpoints = Path(run_dir) / "checkpoints"
    saved = sorted(path.name for path in checkpoints.glob("*.pt")) if checkpoints.is_dir() else []
    if not saved:
        return
    if resume is not None and resume.parent.exists() and os.path.samefile(resume.parent, checkpoints):
        return
    raise RunDirectoryTaken(
        f"{run_dir} holds the checkpoints of another run (checkpoints/{', checkpoints/'.join(saved)}); continue "
        f"it with trainer.resume={run_dir}, or give this run another directory (hydra.run.dir)"
    )


def acquire(run_dir: Path) -> None:
    """Lock `run_dir` for this process (creating it); RunDirectoryTaken if another run holds it. Taken
    again by the same process, it counts; `release` as often."""
    run_dir = Path(run_dir)
    key = _key(run_dir)
    if key in _held:
        _held[key].count += 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    created = not path.exists()
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    lock, record = _try_lock(descriptor), _record(descriptor)
    refusal = _taken(run_dir, lock, record)
    if refusal is not None:
        os.close(descriptor)
        raise refusal
    if record:
        log.info("%s: the lock of pid %s, which ended without releasing it, was stale", run_dir, record.get("pid"))
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, (json.dumps(mine) + "\n").encode(), 0)
    _held[key] = _Held(descriptor, created)


def release(run_dir: Path, forget: bool = False) -> None:
    """Undo one `acquire`; the last one empties the record and drops the lock. `forget`: also remove the
    lock file if this process created it (a refused run leaves the directory as it found it)."""
    key = _key(run_dir)
    held = _held.get(key)
    if held is None:
        return
    held.count -= 1
    if held.count > 0 and not forget:
        return
    del _held[key]
    if forget and held.created:
        Path(run_dir, LOCK_FILE).unlink(missing_ok=True)  # still locked: no one else can take it meanwhile
    else:
        os.ftruncate(held.descriptor, 0)
    os.close(held.descriptor)


@contextmanager
def held(run_dir: Path):
    """`acquire` for the duration of a block."""
    acquire(run_dir)
    try:
        yield
    finally:
        release(run_dir)


@atexit.register
def _release_all() -> None:
    for key in list(_held):
        _held[key].count = 1
        release(Path(key))
