"""The pinned-pCPU experiment refuses bad input before it starts anything (its live run is
in test_repro_live.py)."""

from __future__ import annotations

import pytest

from kvmlab.cpu.repro_pinned import pinned_share
from kvmlab.errors import ScenarioError


@pytest.mark.parametrize(("args", "kwargs", "rule"), [
    ((-1,), {}, "sleeps_per_s must be from 0 to 20000"),
    ((1e9,), {}, "sleeps_per_s must be from 0 to 20000"),
    (("often",), {}, "sleeps_per_s must be a finite number"),
    ((float("nan"),), {}, "sleeps_per_s must be a finite number"),
    ((100,), {"window_s": 0.01}, "window_s must be from 0.2 to 120 s"),
    ((100,), {"emulator": "yes"}, "emulator must be true or false"),
])
def test_bad_input_names_the_rule(args, kwargs, rule):
    with pytest.raises(ScenarioError, match=rule):
        pinned_share(*args, **kwargs)
