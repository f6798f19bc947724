"""The run directory's lock: ``RUN/.lock`` held by the one run that writes it.

A second run is refused while the holder lives; a lock left by a dead process on this host is taken
over. A lock from another host cannot be checked from here and is refused. Readers (``report``,
``regress``, ``gradcam``) and Ray workers (their driver holds the lock) take no lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

# The checks are the reader's (reports may not import harness; harness may import reports): the
# runner verifies on resume exactly what a report verifies before reading.


LOCK = ".lock"


class RunDirError(ValueError):
    """A run directory that cannot be used for this run; the message says why and what to do."""


@dataclass(frozen=True)
class LockHolder:
    """The run that holds ``RUN/.lock``: enough to find it (pid, host) and to tell the user what it is."""

    pid: int
    host: str
    started_at: str
    command: str

    @classmethod
    def this_process(cls, command: str) -> LockHolder:
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), started, command)

    @classmethod
    def parse(cls, raw: bytes) -> LockHolder | None:
        """The holder a lock file names, or None when it names none (empty, cut short, not ours)."""
        try:
            found = json.loads(raw)
            return cls(int(found["pid"]), str(found["host"]), str(found["started_at"]), str(found["command"]))
        except (ValueError, KeyError, TypeError):
            return None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    def describe(self) -> str:
        return (
            f"pid {self.pid} on host {self.host!r}, started {self.started_at}, "
            f"command: {self.command or '(not recorded)'}"
        )


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


# A lock file is created empty and then written; a reader can catch it in between. This is how long a
# reader waits for its content before calling the lock unreadable.
_LOCK_READ_TRIES, _LOCK_READ_PAUSE = 20, 0.05
# Creating the lock is retried after a stale lock is removed, or after a holder released it between
# our create and our read; more tries than this means other runs keep starting in the same folder.
_LOCK_ATTEMPTS = 5


def _read_lock(path: Path) -> tuple[bytes, LockHolder | None] | None:
    """The lock file's bytes and holder (None: it names none); None when there is no lock file."""
    raw = b""
    for _ in range(_LOCK_READ_TRIES):
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        holder = LockHolder.parse(raw)
        if holder is not None:
            return raw, holder
        time.sleep(_LOCK_READ_PAUSE)
    return raw, None


def _refuse_unless_dead(path: Path, raw: bytes, holder: LockHolder | None) -> None:
    """Raise RunDirError unless ``holder`` is certainly gone: a dead pid on this host."""
    run_dir = path.parent
    if holder is None:
        raise RunDirError(
            f"{str(path)!r} exists but names no run (expected JSON with pid, host, started_at, command; "
            f"got {raw[:80]!r}): if no run is writing {str(run_dir)!r}, delete {str(path)!r} and run again"
        )
    here = socket.gethostname()
    if holder.host != here:
        raise RunDirError(
            f"{str(run_dir)!r} is locked by a run on another host ({holder.describe()}); this host "
            f"({here!r}) cannot check whether it still runs. If that run is certainly gone, delete "
            f"{str(path)!r} and run again; otherwise wait for it, or use another --out"
        )
    if _alive(holder.pid):
        raise RunDirError(
            f"{str(run_dir)!r} is being written by another run ({holder.describe()}): two runs into one "
            "folder would compute every cell twice. Wait for it to finish (then run again to resume), stop "
            "it, or use another --out"
        )


def _remove_stale(path: Path, raw: bytes) -> None:
    """Remove the dead run's lock ``raw``, and only it: another run may have taken it over meanwhile."""
    # Renaming is atomic, so exactly one of several runs taking over gets the file; the content then
    # says whether it was the dead lock, or a lock that a quicker run had just put in its place.
    moved = path.with_name(f"{LOCK}.stale.{os.getpid()}")
    try:
        os.rename(path, moved)
    except FileNotFoundError:
        return  # another run removed it first; the next attempt meets that run's lock
    try:
        if moved.read_bytes() != raw:
            # A live run's lock: put it back (link fails if yet another lock appeared; that one stays).
            with contextlib.suppress(FileExistsError):
                os.link(moved, path)
    finally:
        moved.unlink(missing_ok=True)


def acquire(path: Path, mine: bytes) -> LockHolder | None:
    """Create the lock file holding ``mine``; returns the dead holder it took over, if any."""
    taken_over: LockHolder | None = None
    for _ in range(_LOCK_ATTEMPTS):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            found = _read_lock(path)
            if found is None:
                continue  # released between our create and our read
            raw, holder = found
            _refuse_unless_dead(path, raw, holder)
            _remove_stale(path, raw)
            taken_over = holder
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(mine)
        return taken_over
    raise RunDirError(
        f"could not take the lock {str(path)!r} in {_LOCK_ATTEMPTS} attempts: other runs keep starting "
        "in the same folder. Start one run per --out"
    )


def release(path: Path, mine: bytes) -> None:
    # Only our own lock: if someone deleted it (as the refusal messages suggest for a lost run) and
    # another run took the folder, its lock stays.
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == mine:
            path.unlink()
