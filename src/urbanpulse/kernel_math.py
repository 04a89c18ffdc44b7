"""Scalar helpers shared by the Numba kernels (windows, detectors): numpy's NaN semantics.

The kernels must give exactly what the numpy formulations they replace gave, and Python's
``max``/``min`` (or ``a if a > b else b``) let a NaN lose or win depending on argument order,
where ``np.maximum``/``np.minimum`` always propagate it.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def nan_max(a, b):  # noqa: ANN001, ANN201 - np.maximum: NaN wins
    """np.maximum for two scalars."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a > b else b


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def nan_min(a, b):  # noqa: ANN001, ANN201 - np.minimum: NaN wins
    """np.minimum for two scalars."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a < b else b
