"""Checking the arguments of the commands and the public constructors: one wording for each mistake.

The commands (``predict``, ``track``, ``export``, ``benchmark``) and the constructors they call
(:class:`~centernet_lightning.inference.Predictor`, the backends, the
:class:`~centernet_lightning.tracking.Tracker`, test-time augmentation, the exports) check their
arguments with these helpers, so a bad value gives the same one-line error from the command line
(``centernet predict: --conf must be in [0, 1], got -0.5``) and from Python (``ValueError:
score_threshold must be in [0, 1], got -0.5``): the name of the option or key, what it takes, and
the value given. A value of the wrong kind (``'abc'`` for a threshold) is a TypeError, one outside
its range a ValueError; the TypeError is a :class:`WrongTypeError`, a ValueError too, so a
caller that catches bad values (``except ValueError``) catches both.

Nothing heavy is imported here: the commands check their options before importing torch.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import os
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_INPUT_SIZE",
    "MIN_INPUT_SIZE",
    "WrongTypeError",
    "available_memory",
    "check_bool",
    "check_choice",
    "check_int_min",
    "check_int_range",
    "check_known_keys",
    "check_memory",
    "check_range",
    "parse_setting",
    "setting_types",
]

# Input sides (pixels) a run may ask for. 32 is the coarsest stride of the backbones; 8192 is 16x
# the paper's 512 px, already 805 MB of float32 input per image (and ~13 GB of canvas at 65536).
MIN_INPUT_SIZE = 32
MAX_INPUT_SIZE = 8192
GIB = 1024**3


class WrongTypeError(TypeError, ValueError):
    """A value of the wrong kind (``'abc'`` for a threshold, 2.5 for a batch size): a TypeError, and
    a ValueError for callers that catch every bad value given (configs, commands)."""


def _shown(value: Any) -> str:
    """A value as an error message quotes it: numbers plain (``-0.5``), anything else repr'd (``'abc'``)."""
    return str(value) if _is_number(value) else repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(high):
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_range(
    name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False
) -> float:
    """``value`` as a float if it is a number in ``[low, high]`` (an end excluded when ``*_open``).

    :class:`WrongTypeError` for a non-number (a string, a bool, None); ValueError for NaN,
    infinity or a value outside, both naming ``name``: ``conf must be in [0, 1], got -0.5``.
    """
    interval = _interval(low, high, low_open, high_open)
    if not _is_number(value):
        raise WrongTypeError(f"{name} must be a number {interval}, got {_shown(value)}")
    number = float(value)
    below = number <= low if low_open else number < low
    above = number >= high if high_open else number > high
    if not math.isfinite(number) or below or above:
        raise ValueError(f"{name} must be {interval}, got {_shown(value)}")
    return number


def check_int_range(name: str, value: Any, low: int, high: float = math.inf) -> int:
    """``value`` if it is an integer in ``[low, high]``: :class:`WrongTypeError` for anything but an
    integer (a float such as 2.5 or 8.0, a string, a bool), ValueError outside (``batch must be >= 1,
    got 0``)."""
    interval = _interval(low, high, False, False)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise WrongTypeError(f"{name} must be an integer {interval}, got {_shown(value)}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be {interval}, got {value}")
    return int(value)


def check_int_min(name: str, value: Any, minimum: int) -> int:
    """``value`` if it is an integer >= ``minimum`` (see :func:`check_int_range`)."""
    return check_int_range(name, value, minimum)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is True or False; :class:`WrongTypeError` naming ``name`` otherwise (``'yes'``, 1)."""
    if not isinstance(value, bool):
        raise WrongTypeError(f"{name} must be true or false, got {_shown(value)}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``; ValueError listing them otherwise."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {_shown(value)}")
    return value


def check_known_keys(what: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """ValueError naming every key of ``given`` that ``valid`` lacks, a close valid key when there
    is one, and the valid keys: ``--tracker: unknown key 'hig_thresh' (did you mean 'high_thresh'?);
    valid keys: ...``."""
    valid = list(valid)
    unknown = [key for key in given if key not in valid]
    if not unknown:
        return
    close = difflib.get_close_matches(str(unknown[0]), [str(key) for key in valid], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    keys = f"key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
    raise ValueError(f"{what}: unknown {keys}{hint}; valid keys: {', '.join(map(str, valid))}")


# ------------------------------------------------------------------------------ settings as text
_TRUE, _FALSE, _NONE = ("true", "yes", "on"), ("false", "no", "off"), ("none", "null", "~")
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "none"}


def _accepted(expected_type: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected_type if isinstance(expected_type, tuple) else (expected_type,)


def parse_setting(key: str, text: str, expected_type: type | tuple[type, ...]) -> Any:
    """A ``KEY=VALUE`` setting's text read as ``expected_type`` (bool, int, float, str or None, or a
    tuple of them, e.g. ``(float, type(None))`` for ``float | None``).

    ``none``/``null`` is None where None is accepted; ``true``/``false`` (``yes``/``no``) a bool;
    an int is accepted where a float is. ValueError naming ``key`` and the text otherwise:
    ``--tracker high_thresh must be a number, got 'abc'``.
    """
    accepted = _accepted(expected_type)
    unknown = [kind for kind in accepted if kind not in _TYPE_NAMES]
    if unknown:
        raise ValueError(f"{key} cannot be set from text (it takes a {unknown[0].__name__} object)")
    word = text.strip()
    if type(None) in accepted and word.lower() in _NONE:
        return None
    if bool in accepted and word.lower() in _TRUE + _FALSE:
        return word.lower() in _TRUE
    if int in accepted:
        try:
            return int(word)
        except ValueError:
            pass
    if float in accepted:
        try:
            return float(word)
        except ValueError:
            pass
    if str in accepted:
        return text
    expected = " or ".join(_TYPE_NAMES[kind] for kind in accepted if not (kind is int and float in accepted))
    raise ValueError(f"{key} must be {expected}, got {text!r}")


def setting_types(function: Callable[..., Any]) -> dict[str, tuple[type, ...]]:
    """The keyword parameters of ``function`` (a class: its ``__init__``) and the types their
    annotations accept (``float | None`` -> ``(float, NoneType)``), for :func:`parse_setting`."""
    target = function.__init__ if inspect.isclass(function) else function
    hints = typing.get_type_hints(target)
    found = {}
    for name, parameter in inspect.signature(target).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        hint = hints.get(name, str)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        found[name] = tuple(typing.get_args(hint)) if union else (hint,)
    return found


# ------------------------------------------------------------------------------ memory
def available_memory(device: Any = "cpu") -> int | None:
    """Bytes that can still be allocated on ``device`` (``cpu``, ``cuda``, ``cuda:N`` or a
    torch.device): the GPU's free memory plus PyTorch's unused cache, or the host's
    ``MemAvailable`` (free memory plus reclaimable cache); None when it cannot be told."""
    text = str(device)
    if text.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(text))
        return int(free + torch.cuda.memory_reserved(text) - torch.cuda.memory_allocated(text))
    meminfo = Path("/proc/meminfo")
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # free pages only (no cache): an underestimate, but the only POSIX figure
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(what: str, needed: int, device: Any, advice: str) -> None:
    """ValueError when ``needed`` bytes exceed what :func:`available_memory` reports on ``device``:
    ``{what} needs at least 12.3 GiB, more than the 8.1 GiB available on cpu: {advice}``."""
    available = available_memory(device)
    if available is not None and needed > available:
        raise ValueError(
            f"{what} needs at least {needed / GIB:.1f} GiB, more than the {available / GIB:.1f} GiB available on "
            f"{device}: {advice}"
        )
