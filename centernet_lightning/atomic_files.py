"""Writing files so that they appear complete or not at all, and never replace one by accident.

Every file the library writes for a user (checkpoints, exported models, prediction and tracking
results, drawn images and videos, evaluation files) goes through this module. The content is
serialised in memory and written from Python by :func:`write_bytes_atomically` /
:func:`write_text_atomically`, or, for a writer that needs a file name (OpenCV's video writer), into
the temporary path of :func:`atomic_target`; then the temporary file gets its name.

Serialising in memory matters on a full disk: PyTorch's C++ zip writer (``torch.save``,
``torch.jit.save`` to a path) throws from a destructor there and aborts the process, where a
Python write raises an OSError. A full disk (ENOSPC), a quota (EDQUOT) or a file-size limit
(EFBIG) becomes one :class:`DiskFullError` naming the file, and the temporary file is removed.

Temporaries are named ``.<name>.partial-<pid>-<random><suffix>`` beside their destination
(:data:`TEMPORARY_PATTERN`); only a process killed while writing (SIGKILL, a power cut) leaves
one behind. :func:`remove_stale_temporaries` removes those whose process is gone: an export or a
checkpoint written to a path does it for that file's temporaries, resuming from a checkpoint in
its folder, and a new prediction or tracking run in the run folders beside its own.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "DISK_FULL_ERRNOS",
    "DiskFullError",
    "TEMPORARY_PATTERN",
    "atomic_target",
    "is_disk_full",
    "remove_stale_temporaries",
    "write_bytes_atomically",
    "write_new_file",
    "write_text_atomically",
]

log = logging.getLogger(__name__)

# No room on the device, over a quota, over the process's file-size limit (RLIMIT_FSIZE): all mean
# the file cannot be completed here.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# ".<name>.partial-<pid>-<8 random characters of mkstemp><suffix>": the pid tells whether the writer
# still runs, the name which file it was to become.
TEMPORARY_PATTERN = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)-[a-z0-9_]{8}(?P<suffix>\.[^.]*)?$")
# Temporaries modified before this are candidates for removal: a writer started after us is never one.
_STARTED = time.time()


class DiskFullError(OSError):
    """No space left on the device (or a quota, or a file-size limit) while writing ``path``; the
    partial temporary file was removed. An OSError, so the commands print it as one line."""

    def __init__(self, path: str | os.PathLike, cause: OSError | None = None) -> None:
        code = cause.errno if cause is not None and cause.errno in DISK_FULL_ERRNOS else errno.ENOSPC
        reason = os.strerror(code)
        self.path = Path(path)
        super().__init__(code, f"no space left on device writing {path} ({reason}); nothing was written there")

    def __str__(self) -> str:
        return str(self.strerror)


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` says the device (or a quota, or the file-size limit) has no room."""
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.partial-{os.getpid()}-"


@contextmanager
def atomic_target(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """A temporary file next to ``path`` to write; on leaving the block it gets the name ``path``.

    Without ``overwrite`` an existing ``path`` raises FileExistsError before any work, and one that
    appears meanwhile too (``os.link`` refuses it; where the file system has no hard links, an exists
    check then a rename stands in). The file gets mode 0644 (mkstemp's 0600 would hide it from
    the people it is meant for). Parent folders are created. An exception inside the block leaves
    nothing behind; a full disk raises :class:`DiskFullError`.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; choose another output path (nothing was written)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=path.suffix, dir=path.parent)
    except OSError as error:
        if is_disk_full(error):
            raise DiskFullError(path, error) from error
        raise
    os.close(descriptor)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o644)
        if overwrite:
            os.replace(temporary, path)
            return
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise FileExistsError(f"{path} appeared while writing; nothing was overwritten") from None
        except OSError as error:
            if is_disk_full(error):  # a link needs a directory entry, which can need a block
                raise
            if path.exists():  # no hard links here
                raise FileExistsError(f"{path} appeared while writing; nothing was overwritten") from None
            os.replace(temporary, path)
    except OSError as error:
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise DiskFullError(path, error) from error
        raise
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_bytes_atomically(
    path: str | os.PathLike, data: bytes | bytearray | memoryview, overwrite: bool = False
) -> Path:
    """Write ``data`` (serialised in memory: ``torch.save`` / ``torch.jit.save`` into ``io.BytesIO``,
    ``SerializeToString``, ``cv2.imencode``) as the file ``path``; returns it (the rules of
    :func:`atomic_target`)."""
    with atomic_target(path, overwrite) as temporary, open(temporary, "wb") as file:
        file.write(data)  # closing reports what writing did not (NFS reports a full disk there)
    return Path(path)


def write_new_file(path: str | os.PathLike, data: bytes | bytearray | memoryview) -> Path:
    """:func:`write_bytes_atomically` of a new file (FileExistsError when ``path`` exists), after
    removing the temporaries an earlier, killed write to ``path`` left (exports, checkpoints)."""
    remove_stale_temporaries(Path(path).parent, name=Path(path).name)
    return write_bytes_atomically(path, data)


def write_text_atomically(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    """:func:`write_bytes_atomically` for text (UTF-8)."""
    return write_bytes_atomically(path, text.encode("utf-8"), overwrite)


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: a process of another user runs under that pid
        return False
    return False


def remove_stale_temporaries(folder: str | os.PathLike, depth: int = 0, name: str | None = None) -> list[Path]:
    """Remove the temporaries a killed writer left in ``folder`` (and ``depth`` levels of subfolders);
    returns them.

    Only files named as :func:`atomic_target` names them (:data:`TEMPORARY_PATTERN`; with ``name``,
    only those of that destination name), whose writing process no longer runs and which were last
    modified before this process started: never a user's file, nor a file another run is writing.
    """
    folder = Path(folder)
    pattern = f".{glob.escape(name)}.partial-*" if name is not None else ".*.partial-*"
    candidates = list(folder.glob(pattern))
    for level in range(1, depth + 1):
        candidates += folder.glob("/".join(["*"] * level) + "/" + pattern)
    removed = []
    for candidate in candidates:
        match = TEMPORARY_PATTERN.match(candidate.name)
        if match is None or (match["suffix"] or "") != Path(match["name"]).suffix:
            continue
        try:
            stat = candidate.lstat()
            if not candidate.is_file() or candidate.is_symlink() or stat.st_mtime >= _STARTED:
                continue
            if not _process_gone(int(match["pid"])):
                continue
            candidate.unlink()
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            continue
        removed.append(candidate)
    if removed:
        log.warning(
            "Removed %d partial file(s) left by an interrupted run: %s",
            len(removed),
            ", ".join(map(str, removed[:5])) + (", ..." if len(removed) > 5 else ""),
        )
    return removed
