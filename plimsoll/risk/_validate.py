"""Input checks shared by the risk modules: every failure is a :class:`RiskInputError`."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from plimsoll.errors import RiskInputError

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def as_float(name: str, value: ArrayLike) -> FloatArray:
    """``value`` as a float64 array, refusing NaN and infinities."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RiskInputError(f"{name} must be numeric: {exc}") from None
    if not np.all(np.isfinite(arr)):
        raise RiskInputError(f"{name} must be finite (got NaN or infinity)")
    return arr


def positive(name: str, value: ArrayLike) -> FloatArray:
    """``value`` as a float64 array whose entries are all > 0."""
    arr = as_float(name, value)
    if np.any(arr <= 0.0):
        raise RiskInputError(f"{name} must be > 0 (got min {arr.min()!r})")
    return arr


def non_negative(name: str, value: ArrayLike) -> FloatArray:
    """``value`` as a float64 array whose entries are all >= 0."""
    arr = as_float(name, value)
    if np.any(arr < 0.0):
        raise RiskInputError(f"{name} must be >= 0 (got min {arr.min()!r})")
    return arr


def flags(name: str, value: ArrayLike) -> BoolArray:
    """``value`` as a boolean array (``True`` = call)."""
    arr = np.asarray(value)
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iu" or np.any((arr != 0) & (arr != 1)):
            raise RiskInputError(f"{name} must be boolean (True = call, False = put)")
        arr = arr.astype(np.bool_)
    return arr


def confidence_level(confidence: float) -> float:
    """A confidence level strictly inside (0, 1)."""
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise RiskInputError(f"confidence must be in (0, 1), got {confidence!r}")
    return c


def broadcast(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """``np.broadcast_arrays`` raising :class:`RiskInputError` on a shape mismatch."""
    try:
        return tuple(np.broadcast_arrays(*arrays))
    except ValueError as exc:
        raise RiskInputError(f"inputs do not broadcast to one shape: {exc}") from None
