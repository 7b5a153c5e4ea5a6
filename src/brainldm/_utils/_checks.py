"""Validators whose messages name the parameter, the value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any


def _fmt_allowed(allowed: Iterable[Any]) -> str:
    return ", ".join(repr(a) for a in allowed)


def check_option(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError.

    Parameters
    ----------
    name : str
        Name of the parameter, as the user wrote it.
    value : object
        What was given.
    allowed : iterable
        The valid values.

    Returns
    -------
    value : object
        ``value`` unchanged.
    """
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not valid; allowed: {_fmt_allowed(allowed)}.")
    return value


def check_choices(name: str, values: Iterable[Any], allowed: Iterable[Any]) -> list[Any]:
    """Check that every element of ``values`` is in ``allowed``.

    Returns the values as a list; raises a ValueError naming the unknown ones.
    """
    values = list(values)
    allowed = list(allowed)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(
            f"{name} contains unknown value(s) {_fmt_allowed(unknown)}; "
            f"allowed: {_fmt_allowed(allowed)}."
        )
    return values


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int if it is a positive integer, else raise."""
    try:
        as_int = int(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive integer, got {value!r}.") from None
    if isinstance(value, bool) or as_int != value or as_int < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return as_int


def _invalid(name: str, value: Any, allowed: str) -> ValueError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ValueError(f"{name}={shown} is not valid; allowed: {allowed}.")


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> float | int:
    """Return ``value`` if it is a finite number in the given range, else raise a ValueError.

    Strings and booleans are refused (``"5"`` is not 5, ``true`` is not 1), as
    are NaN and infinities, so a config value is never silently reinterpreted.

    Parameters
    ----------
    name : str
        Name of the setting, as the user wrote it (``"reconstruction.strength"``).
    value : object
        What was given.
    low, high : float or None
        Bounds; None for none.
    low_open, high_open : bool
        Whether the bound itself is excluded.
    integer : bool
        Require an integer (``3.0`` is accepted as 3).

    Returns
    -------
    value : int or float
    """
    lo = "" if low is None else f"{'>' if low_open else '≥'} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '≤'} {high:g}"
    allowed = ("an integer" if integer else "a finite number") + (
        f" {lo}{' and ' if lo and hi else ''}{hi}" if lo or hi else ""
    )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = getattr(getattr(value, "dtype", None), "kind", "")
        if kind not in ("i", "u", "f") or getattr(value, "ndim", 1) != 0:  # numpy scalars pass
            raise _invalid(name, value, allowed)
        value = value.item()
    try:
        as_float = float(value)
    except OverflowError:
        raise _invalid(name, value, allowed) from None
    if not math.isfinite(as_float) or (integer and as_float != int(as_float)):
        raise _invalid(name, value, allowed)
    if low is not None and (as_float < low or (low_open and as_float == low)):
        raise _invalid(name, value, allowed)
    if high is not None and (as_float > high or (high_open and as_float == high)):
        raise _invalid(name, value, allowed)
    return int(value) if integer else value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is True or False (never a string such as ``"no"``), else raise."""
    if not isinstance(value, bool):
        raise _invalid(name, value, "true or false")
    return value


def check_text(name: str, value: Any, *, optional: bool = False) -> str | None:
    """Return ``value`` if it is a non-empty string (or None when ``optional``), else raise."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid(name, value, "a non-empty string" + (" or nothing" if optional else ""))
    return value


def check_sequence(
    name: str,
    value: Any,
    item: Callable[[str, Any], Any],
    *,
    what: str,
    min_len: int = 1,
    unique: bool = False,
) -> tuple:
    """Check a list setting item by item; return it as a tuple.

    Parameters
    ----------
    name : str
        Name of the setting.
    value : object
        What was given; a list or tuple (a lone string or number is refused).
    item : callable ``(name, value) -> value``
        Check of one element; its messages name ``name[i]``.
    what : str
        What the elements are, for the message (``"integers ≥ 1"``).
    min_len : int
        Fewest elements.
    unique : bool
        Refuse repeated elements.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise _invalid(name, value, f"a list of {what}")
    if len(value) < min_len:
        raise _invalid(name, value, f"a list of at least {min_len} {what}")
    items = tuple(item(f"{name}[{i}]", v) for i, v in enumerate(value))
    if unique and len(set(items)) != len(items):
        raise _invalid(name, value, f"a list of {what} without repeats")
    return items
