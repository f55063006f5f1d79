"""Input checks shared by every op family: each raises ValueError naming the argument,
what it expected and what it was given."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)

# Value checks (finite, in range, sorted) read tensor contents, which costs a host
# synchronisation each; shape, dtype and device checks are free and always run.
_value_checks = True


def set_checks(enabled: bool) -> None:
    """Turns the ops' value checks (finite, ranges, sortedness) on or off for the process."""
    global _value_checks
    _value_checks = bool(enabled)


def checks_enabled() -> bool:
    """Whether the ops' value checks are on (see set_checks)."""
    return _value_checks


@contextlib.contextmanager
def checks(enabled: bool) -> Iterator[None]:
    """Within the block, value checks are on or off; the previous setting comes back after."""
    previous = _value_checks
    set_checks(enabled)
    try:
        yield
    finally:
        set_checks(previous)


def value_checks(validate: bool | None) -> bool:
    """Whether an op call runs its value checks: its `validate=` argument if given, else the
    process-wide setting."""
    return _value_checks if validate is None else bool(validate)


def _shape_str(shape: Sequence[int | str | None]) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


def check_tensor(
    name: str,
    value: object,
    shape: Sequence[int | str | None] | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
) -> torch.Tensor:
    """Checks that `value` is a tensor of the given shape (None = any size) and dtype."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if shape is not None:
        fits = value.dim() == len(shape) and all(
            not isinstance(s, int) or value.shape[i] == s for i, s in enumerate(shape)
        )
        if not fits:
            raise ValueError(
                f"{name} must have shape {_shape_str(shape)}, got {list(value.shape)}"
            )
    if dtypes is not None and value.dtype not in dtypes:
        expected = " or ".join(str(d) for d in dtypes)
        raise ValueError(f"{name} must have dtype {expected}, got {value.dtype}")
    return value


def check_same_device(names_and_tensors: dict[str, torch.Tensor]) -> torch.device:
    """Checks that every tensor lives on the device of the first one; returns it."""
    items = iter(names_and_tensors.items())
    first_name, first = next(items)
    for name, tensor in items:
        if tensor.device != first.device:
            raise ValueError(
                f"{name} must be on the same device as {first_name} ({first.device}), "
                f"got {tensor.device}"
            )
    return first.device


def check_same_dtype(names_and_tensors: dict[str, torch.Tensor]) -> torch.dtype:
    """Checks that every tensor has the dtype of the first one; returns it."""
    items = iter(names_and_tensors.items())
    first_name, first = next(items)
    for name, tensor in items:
        if tensor.dtype != first.dtype:
            raise ValueError(
                f"{name} must have the dtype of {first_name} ({first.dtype}), got {tensor.dtype}"
            )
    return first.dtype


def check_finite(name: str, tensor: torch.Tensor, minimum: float | None = None) -> None:
    """Rejects NaN and infinite entries, and entries below `minimum` if given.

    One aminmax pass: min and max propagate NaN, so both are finite iff every entry is.
    """
    if tensor.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(tensor.detach()))
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = int((~torch.isfinite(tensor.detach())).sum())
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite entries")
    if minimum is not None and low < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got minimum {low:g}")


def check_length(name: str, tensor: torch.Tensor, expected: int, of: str) -> None:
    """Checks the leading dimension against the length of another argument."""
    if tensor.shape[0] != expected:
        raise ValueError(
            f"{name} must have {expected} entries (the length of {of}), got {tensor.shape[0]}"
        )
