"""Keeping the converters' and quantisers' logging (ONNX exporter, OpenVINO, NNCF) out of the user's console.

Each logs a line per graph pass or per node it leaves alone, and some rewire the root logger; the
commands show their warnings and errors only, unless ``--verbose``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

__all__ = ["quiet_loggers", "root_logging_kept"]


@contextlib.contextmanager
def quiet_loggers(names: Sequence[str], verbose: bool = False, level: int = logging.WARNING) -> Iterator[None]:
    """Only records of ``level`` and above from the loggers ``names`` (and their children that set no
    level of their own) in the block, unless ``verbose``; their levels are restored after it."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    if not verbose:
        for logger in loggers:
            logger.setLevel(max(logger.getEffectiveLevel(), level))
    try:
        yield
    finally:
        for logger, saved in zip(loggers, levels):
            logger.setLevel(saved)


@contextlib.contextmanager
def root_logging_kept() -> Iterator[None]:
    """The root logger's level and handlers as they were before the block: OpenVINO's converter,
    failing on an unsupported op, sets the root logger to ERROR and gives it a handler, which would hide
    every later warning of the process (and of a test run's log capture)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
