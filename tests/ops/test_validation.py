"""The shared input checks: batched value checks read back once, in order, across dtypes;
scalar and size checks name the argument, the expected and the given."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mp3d.checks import check_int
from mp3d.ops._validation import HostReads, ValueChecks, check_fits_in_memory, check_scalar


def test_value_checks_read_once_and_judge_in_order():
    seen = []
    checks = ValueChecks()
    checks.add((torch.tensor(1.5), torch.tensor(2**53 - 1)), seen.append)
    checks.add((torch.tensor(-3, dtype=torch.int32),), seen.append)
    checks.finite("x", torch.tensor([0.0, 1.0]), minimum=0.0, maximum=1.0)
    with HostReads() as reads:
        checks.run()
    assert reads.calls == {"tolist": 1}
    assert seen == [[1.5, 2**53 - 1], [-3]]


@pytest.mark.parametrize(
    "values, kwargs, match",
    [
        ([0.0, float("nan")], {}, "x must be finite, got 1 NaN or infinite entries"),
        ([0.0, float("-inf")], {}, "x must be finite, got 1 NaN"),
        ([-1.0, 0.5], {"minimum": 0.0, "maximum": 1.0}, r"x must be in \[0, 1\], got minimum -1"),
        ([0.0, 1.5], {"minimum": 0.0, "maximum": 1.0}, r"x must be in \[0, 1\], got maximum 1.5"),
        ([0.0, 1.0], {"above": 0.0, "hint": "why"}, r"x must be > 0 \(why\), got minimum 0"),
    ],
)
def test_finite_messages(values, kwargs, match):
    checks = ValueChecks()
    checks.finite("x", torch.tensor(values), **kwargs)
    with pytest.raises(ValueError, match=match):
        checks.run()


def test_disabled_checks_queue_nothing():
    checks = ValueChecks(enabled=False)
    checks.finite("x", torch.tensor([float("nan")]))
    with HostReads() as reads:
        checks.run()
    assert reads.count == 0


def test_scalar_checks():
    assert check_scalar("a", 2) == 2.0
    assert check_int("n", torch.tensor(3).item()) == 3
    numpy_int = check_int("n", np.int64(3), 1)
    assert numpy_int == 3 and type(numpy_int) is int
    with pytest.raises(ValueError, match="a must be finite, got nan"):
        check_scalar("a", float("nan"))
    with pytest.raises(ValueError, match=r"a must be in \(0, 1\], got 0"):
        check_scalar("a", 0, above=0.0, maximum=1.0)
    with pytest.raises(ValueError, match="a must be a real number, got True"):
        check_scalar("a", True)
    with pytest.raises(ValueError, match="n must be an int, got 2.0"):
        check_int("n", 2.0)
    with pytest.raises(ValueError, match="n must be an int <= 4, got 5"):
        check_int("n", 5, maximum=4)


def test_outputs_beyond_memory_are_refused():
    check_fits_in_memory("small", 10, torch.float32, torch.device("cpu"))
    with pytest.raises(ValueError, match="huge needs 3725290.3 GiB of outputs, more than"):
        check_fits_in_memory("huge", 10**15, torch.float32, torch.device("cpu"))
    check_fits_in_memory("unknown device", 10**15, torch.float32, torch.device("meta"))
