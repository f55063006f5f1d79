"""Input checks shared by every op family: each raises ValueError naming the argument,
what it expected and what it was given."""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.overrides import TorchFunctionMode

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
            raise ValueError(f"{name} must have shape {_shape_str(shape)}, got {list(value.shape)}")
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


# ----------------------------------------------------------------------------- batched value checks


class ValueChecks:
    """The value checks of one op call, read back from the device in one synchronisation.

    Each check queues a few 0-dim tensors of statistics (e.g. the min and max of an input,
    which are both finite iff every entry is, since min and max propagate NaN) and a function
    that judges them; `run` stacks all statistics, copies them to the host once and raises
    the first ValueError. Error messages may read more (e.g. the first bad index): that only
    happens on the error path. With `enabled` False every method is a no-op.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = bool(enabled)
        self._stats: list[torch.Tensor] = []
        self._judges: list[tuple[int, Callable[[list[float]], None]]] = []

    def add(self, stats: Sequence[torch.Tensor], judge: Callable[[list[float]], None]) -> None:
        """Queues the 0-dim tensors `stats` (any real dtypes, no gradient needed) and
        `judge(values)`, later called with them as Python numbers; judge raises ValueError
        when they show bad input."""
        if not self.enabled:
            return
        self._stats.extend(stats)
        self._judges.append((len(stats), judge))

    def finite(
        self,
        name: str,
        tensor: torch.Tensor,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
        hint: str = "",
    ) -> None:
        """Every entry of `tensor` is finite, >= minimum, <= maximum and > above (those given).
        `hint` is appended to range errors (e.g. "activated, e.g. sigmoid of logits")."""
        if not self.enabled or tensor.numel() == 0:
            return
        detached = tensor.detach() if tensor.requires_grad else tensor

        def judge(values: list[float]) -> None:
            low, high = values
            if not (math.isfinite(low) and math.isfinite(high)):
                bad = int((~torch.isfinite(detached)).sum())
                raise ValueError(f"{name} must be finite, got {bad} NaN or infinite entries")
            if (minimum is not None and low < minimum) or (above is not None and low <= above):
                expected = _range_text(minimum, maximum, above, None) + (
                    f" ({hint})" if hint else ""
                )
                raise ValueError(f"{name} must be {expected}, got minimum {low:g}")
            if maximum is not None and high > maximum:
                expected = _range_text(minimum, maximum, above, None) + (
                    f" ({hint})" if hint else ""
                )
                raise ValueError(f"{name} must be {expected}, got maximum {high:g}")

        self.add(torch.aminmax(detached), judge)

    def run(self) -> None:
        """Reads every queued statistic with one device-to-host copy, then judges them in
        the order they were queued."""
        if not self._stats:
            return
        stats, self._stats = self._stats, []
        judges, self._judges = self._judges, []
        groups: dict[torch.dtype, list[int]] = {}
        for i, t in enumerate(stats):
            groups.setdefault(t.dtype, []).append(i)
        if len(groups) == 1:
            values = torch.stack(stats).tolist()  # the one device-to-host copy
        else:  # e.g. float and int64 statistics: float64 holds both (ints up to 2^53)
            order = [i for members in groups.values() for i in members]
            parts = [
                torch.stack([stats[i] for i in members]).to(torch.float64)
                for members in groups.values()
            ]
            flat = torch.cat(parts).tolist()  # the one device-to-host copy
            values = [0.0] * len(stats)
            for i, value in zip(order, flat, strict=True):
                values[i] = value
        start = 0
        for count, judge in judges:
            judge(values[start : start + count])
            start += count


# ----------------------------------------------------------------------------- scalar arguments


def check_scalar(
    name: str,
    value: object,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> float:
    """Checks that `value` is a finite real number (int, float, numpy scalar) within the
    bounds given (minimum/maximum inclusive, above/below exclusive); returns it as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    low_ok = (minimum is None or number >= minimum) and (above is None or number > above)
    high_ok = (maximum is None or number <= maximum) and (below is None or number < below)
    if not (low_ok and high_ok):
        raise ValueError(
            f"{name} must be {_range_text(minimum, maximum, above, below)}, got {value!r}"
        )
    return number


def _range_text(minimum, maximum, above, below) -> str:
    """'in [0, 1)', '>= 0', '> 0' ... for the bounds given."""
    low = high = None
    if minimum is not None or above is not None:
        low = f"[{minimum:g}" if minimum is not None else f"({above:g}"
    if maximum is not None or below is not None:
        high = f"{maximum:g}]" if maximum is not None else f"{below:g})"
    if low is not None and high is not None:
        return f"in {low}, {high}"
    if low is not None:
        return (">= " if minimum is not None else "> ") + low[1:]
    if high is not None:
        return ("<= " if maximum is not None else "< ") + high[:-1]
    return "a finite number"


# ----------------------------------------------------------------------------- output sizes


@functools.cache
def memory_of(device: torch.device) -> int | None:
    """Bytes of memory on `device` (physical RAM for the CPU, the GPU's total memory for
    CUDA), or None where unknown."""
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return int(torch.cuda.get_device_properties(index).total_memory)
    return None


def check_fits_in_memory(
    what: str, n_elements: int, dtype: torch.dtype, device: torch.device
) -> None:
    """Refuses, up front, outputs of `n_elements` of `dtype` that exceed the memory of
    `device` (rather than failing deep in the allocator). `what` names the request, e.g.
    "a 100000x100000 image"."""
    limit = memory_of(device)
    n_bytes = n_elements * dtype.itemsize
    if limit is not None and n_bytes > limit:
        raise ValueError(
            f"{what} needs {n_bytes / 2**30:.1f} GiB of outputs, more than the "
            f"{limit / 2**30:.1f} GiB of memory on {device}"
        )


# ----------------------------------------------------------------------------- counting reads


class HostReads(TorchFunctionMode):
    """Counts the calls that read tensor values back into Python (item, tolist, float(),
    int(), bool(), use as an index, nonzero), each a host synchronisation on a GPU:

        with HostReads() as reads:
            rasterize(...)
        print(reads.count, reads.calls)

    Reads done inside C++ ops (e.g. boolean-mask indexing) are not seen.
    """

    READS = frozenset(
        {"item", "tolist", "__float__", "__int__", "__bool__", "__index__", "nonzero", "numpy"}
    )

    def __init__(self):
        super().__init__()
        self.calls: dict[str, int] = {}

    @property
    def count(self) -> int:
        """Total reads seen."""
        return sum(self.calls.values())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.READS:
            self.calls[name] = self.calls.get(name, 0) + 1
        return func(*args, **(kwargs or {}))
