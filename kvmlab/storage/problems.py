"""OSTEP-style exercises on qcow2 layout, after the homework simulators: infinite problems.

:func:`generate` makes a problem from a seed (the same seed always gives the same
problem): a fresh qcow2 image, a few guest writes, and a question: at which file
offset does a guest byte live, how many clusters long is the file, or where does
it end. :meth:`Problem.solve` answers it with
:class:`~kvmlab.storage.qcow2.Qcow2Model`, :func:`check` gives friendly feedback
that names the usual slips, and :func:`main_problem` is the text the command line
prints.

The rules needed to answer by hand: a fresh image holds a header, a refcount
table, a refcount block and an L1 table, one cluster each here. The first write
into the part of the guest disk an L2 table maps adds that L2 table at the end
of the file; then each guest cluster written for the first time gets the next
cluster at the end of the file. Clusters never move, and a cluster written a
second time is overwritten in place.

Examples
--------
>>> p = generate(7)
>>> p == generate(7)
True
>>> check(p, p.solve()).correct
True
>>> check(p, "12 parsecs").correct
False
"""

from __future__ import annotations

import random
import re
import textwrap
from dataclasses import dataclass
from typing import Any

from kvmlab.display import human_bytes
from kvmlab.exercises import Feedback, problem_text
from kvmlab.storage.qcow2 import Allocation, Qcow2Model
from kvmlab.storage.scenario import StorageScenario
from kvmlab.validate import is_whole

NOWHERE = "nowhere"
"""The answer when no cluster of the file holds a guest byte (it reads as zeros)."""

KINDS = ("offset", "clusters", "end")
KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3

Answer = int | str


@dataclass(frozen=True)
class Problem:
    """A fresh qcow2 image, the guest's writes to it, and a question.

    Attributes
    ----------
    seed : int
        The seed it was generated from (``generate(seed)`` makes it again).
    scenario : StorageScenario
        The image and the writes (``kvmlab.storage.simulate`` or
        ``kvmlab.storage.run_on_host`` check it).
    kind : str
        ``'offset'`` (where does ``guest_offset`` live in the file?), ``'clusters'``
        (how many clusters long is the file?) or ``'end'`` (where does it end?).
    guest_offset : int or None
        The guest byte an ``'offset'`` question asks about.
    """

    seed: int
    scenario: StorageScenario
    kind: str
    guest_offset: int | None = None

    def model(self) -> Qcow2Model:
        """The image after the writes."""
        return Qcow2Model.from_scenario(self.scenario)

    @property
    def question(self) -> str:
        """The problem as a student reads it."""
        s = self.scenario
        cs = s.cluster_size
        model = Qcow2Model(s.virtual_size, cs)
        lines = ["A guest disk is a fresh qcow2 image, made and written like this:", "",
                 f"  qemu-img create -f qcow2 -o cluster_size={cs} disk.qcow2 "
                 f"{_size_arg(s.virtual_size)}",
                 *_command(["qemu-io", *(f"-c 'write {o} {n}'" for o, n in s.writes),
                            "disk.qcow2"]),
                 "", "so the guest writes, in this order:"]
        for i, (offset, length) in enumerate(s.writes):
            lines.append(f"  write {i}: {human_bytes(length)} at guest offset {_offset(offset)}")
        lines += ["", fill(f"Clusters are {human_bytes(cs)}; one L2 table has "
                            f"{model.l2_entries} entries, so it maps "
                            f"{human_bytes(model.l2_entries * cs)} of the guest disk."), ""]
        if self.kind == "offset":
            lines += [f"At which byte offset of the file does guest byte {self.guest_offset:,} "
                      "live?",
                      f"Answer with a number of bytes, or {NOWHERE!r} if no cluster of the "
                      "file holds it."]
        elif self.kind == "clusters":
            lines += ["How many clusters long is the file after these writes?",
                      "Answer with a number of clusters."]
        else:
            lines += ["At which byte offset does the file end after these writes (what "
                      "`qemu-img check`", "reports as the image end offset)? Answer in bytes."]
        return "\n".join(lines)

    def solve(self) -> Answer:
        """The answer, from the model: an offset or ``'nowhere'``, a cluster count, or bytes.

        Examples
        --------
        >>> s = StorageScenario.from_dict({"virtual_size": GiB, "cluster_size": 65536,
        ...                                "writes": [[MiB, 65536], [100, 10]]})
        >>> Problem(0, s, "offset", MiB + 1424).solve()     # data cluster 5, 1424 bytes in
        329104
        >>> Problem(0, s, "offset", 5 * MiB).solve(), Problem(0, s, "clusters").solve()
        ('nowhere', 7)
        >>> Problem(0, s, "end").solve()
        458752
        """
        model = self.model()
        if self.kind == "clusters":
            return model.next_free
        if self.kind == "end":
            return model.image_end_offset
        assert self.guest_offset is not None
        (_start, _length, _depth, _present, _zero, data, offset), = model.ranges(
            self.guest_offset, self.guest_offset + 1)
        return offset if data and offset is not None else NOWHERE

    def explain(self) -> str:
        """The worked answer, step by step."""
        return worked_answer(self)

    def __str__(self) -> str:
        return self.question

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # pragma: no cover - IPython
        p.text(self.question)


_SIZE_SPACE = re.compile(r"(\d) (B|KiB|MiB|GiB|TiB|PiB)\b")


def fill(text: str, indent: str = "") -> str:
    """``text`` wrapped at 88 columns (later lines indented by ``indent``), never between
    a number and its unit.

    Examples
    --------
    >>> print(fill("a" * 80 + " 4.00 KiB", indent="  "))
    aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
      4.00 KiB
    """
    kept = _SIZE_SPACE.sub("\\1\N{NO-BREAK SPACE}\\2", text)
    return textwrap.fill(kept, width=88, subsequent_indent=indent).replace(
        "\N{NO-BREAK SPACE}", " ")


def _size_arg(n: int) -> str:
    for suffix, unit in (("G", GiB), ("M", MiB), ("K", KiB)):
        if n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def _offset(n: int) -> str:
    """``'252,710,912 (241 MiB + 4 KiB)'``: exact bytes, and the same in round parts."""
    if n < KiB:
        return f"{n:,}"
    parts, left = [], n
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB"), (1, "B")):
        if whole := left // unit:
            parts.append(f"{whole} {name}")
            left -= whole * unit
    return f"{n:,} ({' + '.join(parts)})"


def _command(words: list[str], width: int = 86) -> list[str]:
    """Shell words on lines of at most ``width``, continued with a backslash."""
    lines = ["  " + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) + 2 > width:
            lines[-1] += " \\"
            lines.append("      " + word)
        else:
            lines[-1] += " " + word
    return lines


def generate(seed: int) -> Problem:
    """A random problem: 2-4 writes to a 1-2 GiB image of 64 KiB clusters, or to a
    16-32 MiB image of 4 KiB clusters, and one of the three questions.

    Examples
    --------
    >>> p = generate(3)
    >>> 2 <= len(p.scenario.writes) <= 4 and p.kind in KINDS
    True
    >>> print(generate(1).question.splitlines()[0])
    A guest disk is a fresh qcow2 image, made and written like this:
    """
    rng = random.Random(seed)
    if rng.random() < 0.5:
        cs, size, step = 65536, rng.choice([1, 2]) * GiB, MiB
        shifts, lengths = (0, 0, 0, 4 * KiB, 32 * KiB), (4 * KiB, 64 * KiB, 64 * KiB, 128 * KiB)
    else:
        cs, size, step = 4096, rng.choice([16, 32]) * MiB, 64 * KiB
        shifts, lengths = (0, 0, 512, 2 * KiB), (512, 4 * KiB, 4 * KiB, 8 * KiB)
    writes: list[list[int]] = []
    for _ in range(rng.randint(2, 4)):
        if writes and rng.random() < 0.25:            # write again where it wrote before
            offset, length = rng.choice(writes)
            writes.append([offset, min(length, rng.choice(lengths))])
        else:
            writes.append([rng.randrange(size // step) * step + rng.choice(shifts),
                           rng.choice(lengths)])
    scenario = StorageScenario.from_dict({"name": f"problem-{seed}", "virtual_size": size,
                                          "cluster_size": cs, "writes": writes})
    kind = rng.choice(("offset", "offset", "clusters", "end"))
    guest_offset = None
    if kind == "offset":
        model = Qcow2Model.from_scenario(scenario)
        if rng.random() < 0.2:                         # a byte no write came near
            while True:
                guest_offset = rng.randrange(size // 512) * 512
                if guest_offset // cs not in model.data:
                    break
        else:
            offset, length = rng.choice(writes)
            guest_offset = offset + rng.randrange(0, length, 512)
    return Problem(seed, scenario, kind, guest_offset)


# ----------------------------------------------------------------------------- answers


def _describe(a: Allocation, model: Qcow2Model, l2_of: dict[int, int]) -> str:
    if a.kind == "data":
        return f"data of guest cluster {a.guest_cluster}"
    if a.kind == "L2":
        span = model.l2_entries * model.cluster_size
        l1 = l2_of[a.cluster]
        return (f"L2 table for guest bytes {human_bytes(l1 * span)} to "
                f"{human_bytes((l1 + 1) * span)}")
    return {"L1": "L1 table"}.get(a.kind, a.kind)


def worked_answer(problem: Problem) -> str:
    """Replay the writes cluster by cluster, then read the answer off the file.

    Examples
    --------
    >>> s = StorageScenario.from_dict({"virtual_size": GiB, "cluster_size": 65536,
    ...                                "writes": [[MiB, 65536], [100, 10]]})
    >>> print(worked_answer(Problem(0, s, "end")))   # doctest: +ELLIPSIS
    The empty image: cluster 0: header, cluster 1: refcount table, cluster 2: refcount
      block, cluster 3: L1 table.
    write 0 (64.00 KiB at 1,048,576) touches guest cluster 16, which is new: cluster 4: L2
      table for guest bytes 0 B to 512.00 MiB, cluster 5: data of guest cluster 16.
    write 1 (10 B at 100) touches guest cluster 0, which is new: cluster 6: data of guest
      cluster 0.
    The file has 7 clusters of 64.00 KiB, so it ends at 7 x 65,536 = 458,752 bytes.
    """
    s = problem.scenario
    cs = s.cluster_size
    model = Qcow2Model(s.virtual_size, cs)
    lines = []

    def clusters(found: list[Allocation]) -> str:
        l2_of = {c: l1 for l1, c in model.l2_tables.items()}
        return ", ".join(f"cluster {a.cluster}: {_describe(a, model, l2_of)}" for a in found)

    def wrap(text: str) -> str:
        return fill(text, indent="  ")

    lines.append(wrap(f"The empty image: {clusters(model.layout())}."))
    for i, (offset, length) in enumerate(s.writes):
        before = model.next_free
        first, last = offset // cs, (offset + length - 1) // cs
        touched = (f"guest cluster {first}" if first == last
                   else f"guest clusters {first}-{last}")
        model.write(offset, length, index=i)
        new = [a for a in model.layout() if a.cluster >= before]
        head = f"write {i} ({human_bytes(length)} at {offset:,}) touches {touched}"
        if new:
            news = "which is new" if first == last else "new ones get clusters"
            lines.append(wrap(f"{head}, {news}: {clusters(new)}."))
        else:
            lines.append(wrap(f"{head}: it has a cluster already, so nothing is added; the "
                              "data is overwritten in place."))
    n = model.next_free
    if problem.kind == "clusters":
        lines.append(f"The file has {n} clusters of {human_bytes(cs)}.")
    elif problem.kind == "end":
        lines.append(f"The file has {n} clusters of {human_bytes(cs)}, so it ends at "
                     f"{n} x {cs:,} = {n * cs:,} bytes.")
    else:
        x = problem.guest_offset
        assert x is not None
        g, within = divmod(x, cs)
        where = (f"Guest byte {x:,} is in guest cluster {g} ({x:,} // {cs:,}), {within:,} "
                 f"bytes into it ({x:,} mod {cs:,}).")
        if g in model.data:
            f = model.data[g]
            lines.append(wrap(f"{where} Guest cluster {g} is cluster {f} of the file, so the "
                              f"byte lives at {f} x {cs:,} + {within:,} = "
                              f"{f * cs + within:,}."))
        else:
            lines.append(wrap(f"{where} No write touched guest cluster {g}, so no cluster of "
                              f"the file holds it: the answer is {NOWHERE!r}, and the guest "
                              "reads zeros there."))
    return "\n".join(lines)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg])(?:i?b)?$")


def parse_answer(answer: Any) -> Answer | None:
    """An answer as an int or ``'nowhere'``; None if it cannot be read.

    Accepts whole numbers, strings such as ``'327680'``, ``'0x50000'``,
    ``'327,680'``, ``'320K'`` or ``'320 KiB'``, and ``'nowhere'``.

    Examples
    --------
    >>> parse_answer("0x50000"), parse_answer("320 KiB"), parse_answer(7.0)
    (327680, 327680, 7)
    >>> parse_answer("Nowhere"), parse_answer("a lot"), parse_answer(True)
    ('nowhere', None, None)
    """
    if is_whole(answer):
        return int(answer)
    if isinstance(answer, float):
        return int(answer) if answer.is_integer() else None
    if not isinstance(answer, str):
        return None
    text = answer.strip().lower().replace(",", "").replace("_", "")
    if text in (NOWHERE, "none", "zeros", "not allocated", "unallocated"):
        return NOWHERE
    try:
        return int(text, 0)
    except ValueError:
        pass
    if m := _SIZE.match(text):
        value = float(m.group(1)) * 1024 ** ("kmg".index(m.group(2)) + 1)
        return int(value) if value.is_integer() else None
    return None


def _duplicates(scenario: StorageScenario) -> int:
    """Guest clusters written more than once, counted once per extra write."""
    cs = scenario.cluster_size
    touched = [g for o, n in scenario.writes for g in range(o // cs, (o + n - 1) // cs + 1)]
    return len(touched) - len(set(touched))


def _slips(problem: Problem) -> list[tuple[Answer, str, str]]:
    """Wrong answers a student is likely to give: (value, hint name, message), best first."""
    s = problem.scenario
    cs = s.cluster_size
    model = problem.model()
    empty = Qcow2Model(s.virtual_size, cs).next_free
    n, l2 = model.next_free, len(model.l2_tables)
    data = model.allocated_clusters
    dup = _duplicates(s)
    right = problem.solve()
    empty_msg = (f"Did you forget the {empty} clusters a fresh image already has: the header, "
                 "the refcount table, a refcount block and the L1 table? They come first.")
    l2_msg = ("Did you forget the L2 table? The first write into the part of the disk an L2 "
              "table maps allocates that table (a whole cluster) at the end of the file, just "
              "before the data cluster.")
    both_msg = ("You counted only data clusters: the file also holds the header, refcount "
                "table, refcount block and L1 table, and an L2 table for each part of the disk "
                "written to.")
    dup_msg = ("A cluster is allocated once, on the first write that touches it; a later write "
               "to the same cluster overwrites it in place.")
    if problem.kind == "clusters":
        return [(n * cs, "bytes-not-clusters",
                 f"That is a number of bytes; the question asks for clusters of {cs:,} bytes."),
                (data, "only-data", both_msg),
                (n - l2, "forgot-l2", l2_msg),
                (n - empty, "forgot-empty-image", empty_msg),
                (n + dup, "counted-rewrite", dup_msg),
                (n - 1, "off-by-one", "One cluster short: the header is cluster 0, so a file "
                                      "whose last cluster is N has N + 1 clusters."),
                (n + 1, "off-by-one", "One cluster too many: count them again, one by one.")]
    if problem.kind == "end":
        written = sum(length for _o, length in s.writes)
        return [(n, "clusters-not-bytes",
                 f"That is a number of clusters; the end offset is in bytes (x {cs:,})."),
                (s.virtual_size, "virtual-size",
                 "That is the virtual size, what the guest sees. A qcow2 file starts small and "
                 "grows as the guest writes: it ends after its last allocated cluster."),
                (empty * cs + written, "bytes-written",
                 "Space is allocated in whole clusters, not in the bytes written: a 10-byte "
                 "write takes a whole cluster."),
                (data * cs, "only-data", both_msg),
                (n * cs - l2 * cs, "forgot-l2", l2_msg),
                (n * cs - empty * cs, "forgot-empty-image", empty_msg),
                (n * cs + dup * cs, "counted-rewrite", dup_msg),
                (n * cs - cs, "last-cluster-start",
                 "That is where the last cluster starts; the file ends after it."),
                (n * cs // KiB, "kib", "Give the answer in bytes, not KiB.")]
    x = problem.guest_offset
    assert x is not None
    g, within = divmod(x, cs)
    if right == NOWHERE:
        return []
    assert isinstance(right, int)
    f = right // cs
    l2_before = sum(1 for c in model.l2_tables.values() if c < f)
    ordered = StorageScenario(virtual_size=s.virtual_size, cluster_size=cs,
                              writes=tuple(sorted(s.writes)))
    by_guest = Problem(problem.seed, ordered, "offset", x).solve()
    kib = [(right // KiB, "kib", "Give the answer in bytes, not KiB.")] if right % KiB == 0 else []
    return [(NOWHERE, "written-cluster",
             f"Guest byte {x:,} is in guest cluster {g}, and a write touched that cluster, so "
             "the whole cluster was allocated (bytes the guest did not write in it are "
             "zeros in the file)."),
            (x, "raw-offset",
             "That is where the byte would be in a raw image, where guest offset = file "
             "offset. A qcow2 file puts each cluster at the end of the file when it is first "
             "written, in the order of the writes."),
            (f, "cluster-number",
             f"That is the number of the file's cluster; the question asks for a byte offset: "
             f"multiply by the cluster size ({cs:,}) and add the byte's place in the cluster."),
            (right - within, "cluster-start",
             f"That is where the cluster starts; the byte is {within:,} bytes into it "
             f"({x:,} mod {cs:,})."),
            (right - l2_before * cs, "forgot-l2", l2_msg),
            (right - empty * cs, "forgot-empty-image", empty_msg),
            (right - (empty + l2_before) * cs, "forgot-metadata", both_msg),
            (by_guest, "guest-order",
             "Clusters are placed in the order the writes arrive, not in the order of guest "
             "offsets: replay the writes one by one."),
            (right - cs, "off-by-one", "One cluster too early: count again which clusters "
                                       "come before it."),
            (right + cs, "off-by-one", "One cluster too late: count again which clusters come "
                                       "before it."),
            *kib]


def _hint(problem: Problem, given: Answer) -> tuple[str | None, str]:
    right = problem.solve()
    found: dict[str, str] = {}
    for value, name, message in _slips(problem):
        if value == given and value != right and name not in found:
            found[name] = message
    if found:
        (first, message), *others = found.items()
        if others:
            message = (f"That answer fits two slips. {message} Or perhaps: "
                       f"{others[0][1][0].lower()}{others[0][1][1:]}")
        return first, message
    if problem.kind == "offset" and right == NOWHERE:
        g = problem.guest_offset // problem.scenario.cluster_size  # type: ignore[operator]
        return "unallocated", (f"No write touched guest cluster {g}, so no cluster of the file "
                               f"holds this byte (a read returns zeros): answer {NOWHERE!r}.")
    if problem.kind == "offset":
        return None, ("Replay the writes in order: first the clusters of the empty image, then "
                      "for each write a new L2 table if its part of the disk has none yet, "
                      "then a new cluster for each guest cluster written for the first time. "
                      "Then find the byte's cluster and add its place within the cluster.")
    return None, ("Count the clusters one by one: those of the empty image, then for each "
                  "write the new L2 table (if any) and one cluster per guest cluster written "
                  "for the first time.")


def check(problem: Problem, answer: Any) -> Feedback:
    """Is ``answer`` right? If not, say what slip it looks like.

    Parameters
    ----------
    problem : Problem
    answer : int, str or None
        Bytes or clusters as the question asks, as a number or a string
        (``'0x50000'``, ``'320 KiB'``), or ``'nowhere'``.

    Returns
    -------
    Feedback
        ``.correct``, a friendly ``.message`` and, for a recognised slip, ``.hint``.

    Examples
    --------
    >>> s = StorageScenario.from_dict({"virtual_size": GiB, "cluster_size": 65536,
    ...                                "writes": [[MiB, 65536], [100, 10]]})
    >>> p = Problem(0, s, "offset", MiB + 1424)
    >>> print(check(p, 329104))
    Right: guest byte 1,050,000 lives at file offset 329,104 (cluster 5 of the file).
    >>> f = check(p, 329104 - 65536)
    >>> f.correct, f.hint
    (False, 'forgot-l2')
    >>> check(Problem(0, s, "clusters"), 7 * 65536).hint
    'bytes-not-clusters'
    """
    if answer is None:
        return Feedback(False, "No answer yet: " + {
            "offset": "give a byte offset of the file, or 'nowhere'.",
            "clusters": "give a number of clusters.",
            "end": "give the file's end offset in bytes."}[problem.kind])
    given = parse_answer(answer)
    if given is None:
        return Feedback(False, f"I cannot read {answer!r} as an answer: give a whole number "
                               "such as 327680 (or '0x50000', '320 KiB')"
                               + (", or 'nowhere'." if problem.kind == "offset" else "."))
    if given == NOWHERE and problem.kind != "offset":
        return Feedback(False, "This question asks for a number, not a place.")
    if isinstance(given, int) and given < 0:
        return Feedback(False, "Offsets and counts cannot be negative.")
    right = problem.solve()
    if given == right:
        return Feedback(True, _praise(problem, right))
    name, message = _hint(problem, given)
    if isinstance(right, int) and isinstance(given, int):
        direction = "too high" if given > right else "too low"
        return Feedback(False, f"Not yet: {given:,} is {direction}. {message}", name)
    return Feedback(False, f"Not yet. {message}", name)


def _praise(problem: Problem, right: Answer) -> str:
    cs = problem.scenario.cluster_size
    if problem.kind == "clusters":
        return f"Right: the file has {right} clusters ({int(right) * cs:,} bytes)."
    if problem.kind == "end":
        return (f"Right: the file ends at {right:,} bytes ({int(right) // cs} clusters), "
                f"whatever the virtual size ({human_bytes(problem.scenario.virtual_size)}).")
    if right == NOWHERE:
        return ("Right: no cluster holds it. The guest reads zeros there, and the file spends "
                "no space on it.")
    return (f"Right: guest byte {problem.guest_offset:,} lives at file offset {right:,} "
            f"(cluster {int(right) // cs} of the file).")


def main_problem(seed: int, show_answer: bool) -> str:
    """The text the command line prints for ``-s SEED`` (and ``-c`` to show the answer).

    Examples
    --------
    >>> text = main_problem(5, show_answer=False)
    >>> text.splitlines()[0]
    'ARG seed 5'
    >>> "Answer" in main_problem(5, show_answer=True)
    True
    """
    p = generate(seed)
    if not show_answer:
        return problem_text(seed, p.question, None)
    right = p.solve()
    shown = right if isinstance(right, str) else f"{right:,}"
    tool = "map --output=json" if p.kind == "offset" else "check"
    return problem_text(seed, p.question, [
        f"Answer: {shown}", "", "Worked answer:", p.explain(), "",
        "Check it with the model, or with QEMU's own tools:",
        f"  kvmlab.storage.simulate(kvmlab.storage.problems.generate({seed}).scenario)",
        f"  run the commands above, then: qemu-img {tool} disk.qcow2"])


__all__ = ["KINDS", "NOWHERE", "Feedback", "Problem", "check", "fill", "generate",
           "main_problem", "parse_answer", "worked_answer"]
