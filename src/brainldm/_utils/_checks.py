"""Validators whose messages name the parameter, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable
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
