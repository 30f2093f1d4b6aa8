"""A real balloon to inflate and deflate: one tiny guest, the sizes it is set to, in order.

A ``"balloon-run"`` scenario is what ``virsh setmem --live`` does, step by step: the guest
boots with ``memory_mib`` and its balloon empty; each of ``targets_mib`` is then given to
``virDomain.setMemoryFlags(..., VIR_DOMAIN_AFFECT_LIVE)``, and the balloon grows (a smaller
target) or shrinks (a larger one) until the guest holds that much.

Every rule is checked here, and a :class:`~kvmlab.errors.ScenarioError` names the one
broken. A target may not be above the guest's memory (libvirt's maximum: the balloon
cannot give a guest more than it booted with) nor below :func:`floor_mib`, the least the
tiny guest's kernel stays alive with.

Examples
--------
>>> s = BalloonRunScenario(memory_mib=256, targets_mib=(192, 128, 256))
>>> s.balloons_mib()
(64, 128, 0)
>>> BalloonRunScenario(memory_mib=256, targets_mib=(300,))   # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: balloon target 300 MiB is above the guest's maximum memory ...
>>> BalloonRunScenario(memory_mib=256, targets_mib=(64,))    # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: balloon target 64 MiB is below the floor of 96 MiB ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

from kvmlab.errors import ScenarioError
from kvmlab.validate import boolean, check_keys, list_of, mapping, real_number, text, whole_number

MIN_GUEST_MIB = 128
"""The smallest guest a balloon run boots (the floor must leave room to inflate)."""
MAX_GUEST_MIB = 2048
"""The largest guest a balloon run boots: a tiny guest on a teaching host."""
MAX_STEPS = 20
FLOOR_AT_256_MIB = 96
"""The balloon's floor for a guest of 256 MiB, measured: Debian's 6.1 cloud kernel with the
busybox initramfs keeps about 38 MiB for itself (256 MiB minus ``MemTotal``) and uses about
38 MiB more once booted (``MemTotal`` minus ``MemAvailable``). Set to 88 MiB it lived with
12 MiB available; set to 80 MiB its out-of-memory killer took ``/init`` and the kernel
panicked (the domain was gone). 96 MiB leaves about 20 MiB available, room for the
scenario's own script."""


def floor_mib(memory_mib: int) -> int:
    """The least a balloon target may be for a guest of ``memory_mib``.

    :data:`FLOOR_AT_256_MIB`, plus the kernel's page descriptors (``struct page``, 64 bytes
    per 4 KiB page: 1/64 of the memory) for what the guest has above 256 MiB, since those
    stay in the guest whatever the balloon holds.

    Examples
    --------
    >>> floor_mib(256), floor_mib(1024), floor_mib(128)
    (96, 108, 94)
    """
    return FLOOR_AT_256_MIB + (memory_mib - 256) // 64


@dataclass(frozen=True)
class BalloonRunScenario:
    """One tiny guest whose balloon is set to ``targets_mib``, one after the other.

    Parameters
    ----------
    memory_mib : int
        What the guest boots with; also its maximum (:data:`MIN_GUEST_MIB` to
        :data:`MAX_GUEST_MIB`).
    targets_mib : tuple of int
        The memory the guest is told to hold at each step, from :func:`floor_mib` to
        ``memory_mib``.
    deflate_on_oom : bool
        libvirt's ``autodeflate``: the guest may take pages back from its balloon when it
        runs out of memory, and then does not take them off ``MemTotal``.
    free_page_reporting : bool
        libvirt's ``freePageReporting``: the guest tells the host which pages are free, and
        the host lets them go.
    settle_s : float
        Seconds waited at each step once the balloon has reached its target, before reading
        (the balloon's statistics are refreshed every second).
    """

    KIND: ClassVar[str] = "balloon-run"
    memory_mib: int = 256
    targets_mib: tuple[int, ...] = (192, 128, 256)
    deflate_on_oom: bool = False
    free_page_reporting: bool = False
    settle_s: float = 2.0
    name: str = ""
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        text(self.name, "a scenario's name")
        text(self.description, "a scenario's description", high=100_000)
        whole_number(self.memory_mib, "memory_mib", low=MIN_GUEST_MIB, high=MAX_GUEST_MIB)
        targets = tuple(list_of(self.targets_mib, "targets_mib", low=1, high=MAX_STEPS))
        floor = floor_mib(self.memory_mib)
        for t in targets:
            whole_number(t, "a balloon target (MiB)")
            if t > self.memory_mib:
                raise ScenarioError(
                    f"balloon target {t} MiB is above the guest's maximum memory "
                    f"({self.memory_mib} MiB): a balloon can only give back what it took")
            if t < floor:
                raise ScenarioError(
                    f"balloon target {t} MiB is below the floor of {floor} MiB for a guest "
                    f"of {self.memory_mib} MiB: the guest's kernel needs that much to stay "
                    "alive (at 80 MiB of 256 its out-of-memory killer ends /init)")
        object.__setattr__(self, "targets_mib", targets)
        boolean(self.deflate_on_oom, "deflate_on_oom")
        boolean(self.free_page_reporting, "free_page_reporting")
        real_number(self.settle_s, "settle_s", low=1.0, high=60.0)

    def balloons_mib(self) -> tuple[int, ...]:
        """The balloon's size at each step: the guest's memory minus the target."""
        return tuple(self.memory_mib - t for t in self.targets_mib)

    def balloon_options(self) -> dict[str, str]:
        """The ``<memballoon>`` attributes of the guest (see ``TransientGuest(balloon=)``).

        Examples
        --------
        >>> BalloonRunScenario(deflate_on_oom=True).balloon_options()
        {'autodeflate': 'on', 'freePageReporting': 'off'}
        """
        return {"autodeflate": "on" if self.deflate_on_oom else "off",
                "freePageReporting": "on" if self.free_page_reporting else "off"}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with ``"kind": "balloon-run"``."""
        out = {"kind": self.KIND, **asdict(self)}
        out["targets_mib"] = list(self.targets_mib)
        for key in ("name", "description"):
            if not out[key]:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BalloonRunScenario:
        """A scenario from its JSON form (``kind`` may be left out).

        Examples
        --------
        >>> BalloonRunScenario.from_dict({"memory_mb": 256})   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        kvmlab.errors.ScenarioError: ... 'memory_mb' ... did you mean 'memory_mib'?
        """
        given = dict(mapping(data, f"a {cls.KIND} scenario"))
        found = given.pop("kind", cls.KIND)
        if found != cls.KIND:
            raise ScenarioError(f"this is a {cls.KIND!r} scenario, not {found!r}")
        check_keys(given, (f.name for f in fields(cls)), f"the {cls.KIND} scenario")
        if "targets_mib" in given:
            given["targets_mib"] = tuple(list_of(given["targets_mib"], "targets_mib",
                                                 low=1, high=MAX_STEPS))
        assert all(f.default is not MISSING for f in fields(cls))
        return cls(**given)


__all__ = ["FLOOR_AT_256_MIB", "MAX_GUEST_MIB", "MIN_GUEST_MIB", "BalloonRunScenario",
           "floor_mib"]
