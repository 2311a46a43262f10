"""Writing files so that they appear complete or not at all, and never replace one by accident.

Every file the library writes for a user (checkpoints, exported models, prediction and tracking
results, drawn videos) goes through :func:`atomic_target` (or :func:`write_file_atomically` on top
of it): the content is written to a temporary file in the destination folder, then given its name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_target", "write_file_atomically", "write_text_atomically"]


@contextmanager
def atomic_target(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """A temporary file next to ``path`` to write; on leaving the block it gets the name ``path``.

    Without ``overwrite`` an existing ``path`` raises FileExistsError before any work, and one that
    appears meanwhile too (``os.link`` refuses it; where the file system has no hard links, an exists
    check then a rename stands in). The file gets mode 0644 (mkstemp's 0600 would hide it from
    the people it is meant for). Parent folders are created. An exception inside the block leaves
    nothing behind.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; choose another output path (nothing was written)")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", suffix=path.suffix, dir=path.parent)
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
        except OSError:  # no hard links here
            if path.exists():
                raise FileExistsError(f"{path} appeared while writing; nothing was overwritten") from None
            os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_file_atomically(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Run ``write(temporary)`` next to ``path``, then give the file the name ``path``; returns it
    (see :func:`atomic_target` for the rules)."""
    with atomic_target(path, overwrite) as temporary:
        write(temporary)
    return Path(path)


def write_text_atomically(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    """:func:`write_file_atomically` for a text file."""
    return write_file_atomically(path, lambda temporary: temporary.write_text(text), overwrite)
