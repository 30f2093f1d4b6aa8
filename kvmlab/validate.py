"""The one validation layer: everything given by people is checked here.

Every lab reads scenarios from JSON files, dicts, command lines and widgets. These helpers
turn a bad value into a :class:`~kvmlab.errors.ScenarioError` that names the value and the
rule, never into a ``TypeError`` from deep inside a model:

- types: a number is a finite ``int``/``float`` (``True`` and ``False`` are not numbers
  here, although Python lets ``bool`` pass for ``int``), a boolean is a JSON boolean
  (never the string ``"false"``), a text is a string (never ``null``);
- keys: :func:`check_keys` refuses a key no rule knows, at every level, and suggests the
  nearest known one (``did you mean 'mac'?``);
- size: :func:`parse_json_text` refuses text that is not UTF-8, JSON nested deeper than
  :data:`MAX_JSON_DEPTH`, integers longer than :data:`MAX_JSON_INT_DIGITS` digits and
  ``NaN``/``Infinity``; each lab bounds its numbers by what its model computes in
  reasonable time and memory (the bound and its measured basis sit where it is defined).

Examples
--------
>>> whole_number(4, "vcpus", low=1)
4
>>> whole_number(True, "vcpus")
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: vcpus must be a whole number, not True
>>> whole_number(0, "vcpus", low=1)
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: vcpus must be at least 1, not 0
>>> real_number(float("nan"), "duration_s")
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: duration_s must be a finite number, not nan
>>> real_number(2, "load", low=0, high=1)
Traceback (most recent call last):
...
kvmlab.errors.ScenarioError: load must be from 0 to 1, not 2.0
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kvmlab.errors import ScenarioError

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_JSON_INT_DIGITS", "MAX_LIST_ITEMS",
           "MAX_TEXT", "boolean", "check_keys", "is_real", "is_whole",
           "list_of", "mapping", "parse_json_text", "read_json_file", "real_number", "suggest",
           "text", "whole_number"]

MAX_JSON_BYTES = 16 << 20
"""The largest JSON file read (16 MiB): every shipped scenario is under 10 KiB."""
MAX_JSON_DEPTH = 64
"""The deepest nesting of JSON objects and lists read. The deepest real scenario (a storage
overlay on a chain of backing scenarios, each with writes) nests about 20 levels; Python's
own parser dies with a RecursionError near 1000."""
MAX_JSON_INT_DIGITS = 40
"""The longest integer read: 2**64 has 20 digits; Python refuses 4300+ digits with a
ValueError, and multiplying a few 1000-digit numbers already costs seconds in a model."""
MAX_LIST_ITEMS = 100_000
"""The longest list a scenario may hold (writes, trace entries, frames, ...)."""
MAX_TEXT = 1000
"""The longest name or other short text (descriptions may be longer)."""


def is_whole(value: Any) -> bool:
    """True for an ``int`` that is not a ``bool``.

    Examples
    --------
    >>> is_whole(3), is_whole(3.0), is_whole(False)
    (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """True for a finite ``int`` or ``float`` that is not a ``bool``.

    Examples
    --------
    >>> is_real(0.5), is_real(float("inf")), is_real(True), is_real("1")
    (True, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:            # an int too large for a float
        return False


def _bounds(what: str, value: float, low: float | None, high: float | None,
            unit: str) -> None:
    suffix = f" {unit}" if unit else ""

    def show(bound: float) -> str:
        return str(bound) if isinstance(bound, int) else f"{bound:g}"
    if low is not None and high is not None and not low <= value <= high:
        raise ScenarioError(f"{what} must be from {show(low)} to {show(high)}{suffix}, not "
                            f"{_show(value)}")
    if low is not None and value < low:
        raise ScenarioError(f"{what} must be at least {show(low)}{suffix}, not {_show(value)}")
    if high is not None and value > high:
        raise ScenarioError(f"{what} must be at most {show(high)}{suffix}, not {_show(value)}")


def whole_number(value: Any, what: str, *, low: int | None = None, high: int | None = None,
                 unit: str = "") -> int:
    """``value`` if it is a whole number within ``[low, high]``; else a ScenarioError.

    Parameters
    ----------
    value : object
        What was given.
    what : str
        Its name in the message (``"VM 'vm1': vcpus"``).
    low, high : int, optional
        Inclusive bounds.
    unit : str, optional
        Shown after the bounds (``"bytes"``).

    Examples
    --------
    >>> whole_number(4096, "cluster_size", low=512, high=2097152, unit="bytes")
    4096
    >>> whole_number(10**30, "virtual_size", high=2**62, unit="bytes")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: virtual_size must be at most 4611686018427387904 bytes, not ...
    """
    if not is_whole(value):
        raise ScenarioError(f"{what} must be a whole number, not {value!r}")
    _bounds(what, value, low, high, unit)
    return int(value)


def real_number(value: Any, what: str, *, low: float | None = None,
                high: float | None = None, unit: str = "") -> float:
    """``value`` as a float if it is a finite number within ``[low, high]``.

    Examples
    --------
    >>> real_number(3, "duration_s", low=0.1, high=3600, unit="s")
    3.0
    >>> real_number("3", "duration_s")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: duration_s must be a finite number, not '3'
    """
    if not is_real(value):
        raise ScenarioError(f"{what} must be a finite number, not {value!r}")
    number = float(value)
    _bounds(what, number, low, high, unit)
    return number


def _type_name(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", str: "a string", dict: "an object",
             list: "a list", tuple: "a list", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text_ = repr(value)
    return text_ if len(text_) <= 60 else text_[:57] + "..."


def suggest(word: Any, known: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the known word nearest ``word``, or ``""``.

    Examples
    --------
    >>> suggest("mack", ["mac", "ip", "vlan"])
    "; did you mean 'mac'?"
    >>> suggest("zzz", ["mac"])
    ''
    """
    close = difflib.get_close_matches(str(word), sorted(known), n=1, cutoff=0.6)
    if not close:
        lower = {k.lower(): k for k in known}
        if str(word).lower() in lower:
            close = [lower[str(word).lower()]]
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(data: Mapping[Any, Any], known: Iterable[str], where: str, *,
               noun: str = "key") -> None:
    """Refuse any key of ``data`` not in ``known``, suggesting the nearest known key.

    Parameters
    ----------
    data : mapping
        What was given.
    known : iterable of str
        The keys the rules know.
    where : str
        What ``data`` is, for the message (``"NIC 'a:eth0'"``).
    noun : str
        What a key is called in the message (``"unknown key ..."``).

    Examples
    --------
    >>> check_keys({"mac": "02:00:00:00:00:01"}, ["mac", "ip"], "NIC 'a:eth0'")
    >>> check_keys({"mack": "02:00:00:00:00:01"}, ["mac", "ip"], "NIC 'a:eth0'")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: unknown key 'mack' in NIC 'a:eth0'; did you mean 'mac'?
    >>> check_keys({"colour": 1}, ["mac", "ip"], "NIC 'a:eth0'")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: unknown key 'colour' in NIC 'a:eth0'; the keys are 'ip', 'mac'
    """
    known = sorted(set(known))
    for key in data:
        if key not in known:
            hint = suggest(key, known) or (
                f"; the keys are {', '.join(map(repr, known))}" if known else "; it has none")
            raise ScenarioError(f"unknown {noun} {_show(key)} in {where}{hint}")


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object (a dict) whose keys are strings.

    Examples
    --------
    >>> mapping([1], "a NIC")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: a NIC must be a JSON object (a dict), not a list: [1]
    """
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{what} must be a JSON object (a dict), not "
                            f"{_type_name(value)}: {_show(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ScenarioError(f"{what} has key {_show(key)}; keys are strings")
    return value


def list_of(value: Any, what: str, *, low: int = 0, high: int = MAX_LIST_ITEMS) -> list[Any]:
    """``value`` as a list if it is a JSON list (list or tuple) of ``low..high`` items.

    Examples
    --------
    >>> list_of((1, 2), "writes")
    [1, 2]
    >>> list_of("ab", "writes")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: writes must be a list, not a string: 'ab'
    >>> list_of([], "vms", low=1)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: vms must have at least 1 item(s), not 0
    """
    if not isinstance(value, list | tuple):
        raise ScenarioError(f"{what} must be a list, not {_type_name(value)}: {_show(value)}")
    if len(value) < low:
        raise ScenarioError(f"{what} must have at least {low} item(s), not {len(value)}")
    if len(value) > high:
        raise ScenarioError(f"{what} may have at most {high} items, not {len(value)}")
    return list(value)


def text(value: Any, what: str, *, empty: bool = True, high: int = MAX_TEXT) -> str:
    """``value`` if it is a string (never ``null`` or a number) of at most ``high``
    characters; ``empty=False`` refuses ``""``.

    Examples
    --------
    >>> text("vm1", "a VM's name")
    'vm1'
    >>> text(None, "a VM's name")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: a VM's name must be a string, not null: None
    """
    if not isinstance(value, str):
        raise ScenarioError(f"{what} must be a string, not {_type_name(value)}: {_show(value)}")
    if not empty and not value:
        raise ScenarioError(f"{what} cannot be empty")
    if len(value) > high:
        raise ScenarioError(f"{what} may have at most {high} characters, not {len(value)}")
    return value


def boolean(value: Any, what: str) -> bool:
    """``value`` if it is a JSON boolean: ``true`` or ``false``, never ``"false"`` or 0.

    Examples
    --------
    >>> boolean(False, "pvid")
    False
    >>> boolean("false", "pvid")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: pvid must be true or false (a JSON boolean), not 'false'
    """
    if not isinstance(value, bool):
        raise ScenarioError(f"{what} must be true or false (a JSON boolean), not {_show(value)}")
    return value


def _nesting(raw: str) -> int:
    """The deepest bracket nesting of JSON text, strings skipped (a cheap scan done before
    parsing, so the parser never recurses deeper than :data:`MAX_JSON_DEPTH`)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise ScenarioError(f"an integer of {len(digits.lstrip('-'))} digits is too large; "
                            f"kvmlab reads at most {MAX_JSON_INT_DIGITS} digits")
    return int(digits)


def _parse_float(digits: str) -> float:
    number = float(digits)
    if not math.isfinite(number):
        raise ScenarioError(f"the number {digits[:40]} is too large for a finite float")
    return number


def _no_constant(name: str) -> Any:
    raise ScenarioError(f"{name} is not a number JSON allows; give a finite number")


def parse_json_text(raw: str | bytes, source: str = "JSON text") -> Any:
    """The JSON value of ``raw``, refusing what kvmlab cannot use with a ScenarioError.

    Refused: bytes that are not UTF-8, more than :data:`MAX_JSON_BYTES`, nesting deeper
    than :data:`MAX_JSON_DEPTH`, integers of more than :data:`MAX_JSON_INT_DIGITS` digits,
    numbers too large for a float (``1e999``), ``NaN`` and ``Infinity``, and invalid JSON.

    Parameters
    ----------
    raw : str or bytes
        The text (bytes are decoded as UTF-8).
    source : str
        Where it came from, for messages (a file name).

    Examples
    --------
    >>> parse_json_text(b'{"pcpus": 2}')
    {'pcpus': 2}
    >>> parse_json_text(b"\\xff\\xfe", "a.json")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: a.json is not UTF-8 text: byte 0xff at position 0
    >>> parse_json_text("[" * 100_000)
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: JSON text nests lists and objects more than 64 deep
    >>> parse_json_text('{"at_s": NaN}')
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: JSON text: NaN is not a number JSON allows; give a finite number
    """
    if len(raw) > MAX_JSON_BYTES:
        raise ScenarioError(f"{source} has {len(raw)} bytes; kvmlab reads at most "
                            f"{MAX_JSON_BYTES >> 20} MiB of JSON")
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ScenarioError(f"{source} is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} "
                                f"at position {exc.start}") from None
    if _nesting(raw) > MAX_JSON_DEPTH:
        raise ScenarioError(f"{source} nests lists and objects more than {MAX_JSON_DEPTH} deep")
    try:
        return json.loads(raw, parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_no_constant)
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{source} is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:     # defensive: the checks above should hold
        raise ScenarioError(f"{source} cannot be read as JSON: {exc}") from None


def read_json_file(path: str | Path, what: str = "scenario") -> Any:
    """The JSON in the file at ``path``, through :func:`parse_json_text`; a missing file,
    a folder or a file that cannot be read says so plainly.

    Examples
    --------
    >>> read_json_file("/nonexistent.json")
    Traceback (most recent call last):
    ...
    kvmlab.errors.ScenarioError: cannot read scenario /nonexistent.json: No such file or directory
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except (OSError, ValueError) as exc:        # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ScenarioError(f"cannot read {what} {path}: {reason}") from None
    return parse_json_text(raw, str(path))
