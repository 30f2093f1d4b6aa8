"""The labs' notebooks for a student: copy them out of the package, open JupyterLab on them.

The notebooks ship inside kvmlab (the package ``kvmlab.shipped.notebooks``; in the
repository, the folder ``notebooks/``), so ``pip install kvmlab`` is enough:
``kvmlab notebooks DIR`` copies them into ``DIR`` and ``kvmlab lab [DIR]`` also opens
JupyterLab there. A notebook the student has changed is never overwritten without
``--force``.

Examples
--------
>>> names = shipped_notebooks()
>>> names[0], len(names) >= 7
('00-start-here.ipynb', True)
>>> import tempfile
>>> with tempfile.TemporaryDirectory(prefix="kvmlab-") as d:
...     first = copy_notebooks(d)
...     again = copy_notebooks(d)
>>> first.copied == names, again.copied, again.unchanged == names
(True, [], True)
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kvmlab.errors import KvmlabError

DEFAULT_DIR = Path("kvmlab-notebooks")
"""Where ``kvmlab lab`` puts the notebooks when no folder is named."""


def _shipped() -> dict[str, bytes]:
    root = resources.files("kvmlab.shipped.notebooks")
    return {p.name: p.read_bytes() for p in root.iterdir()
            if p.name.endswith(".ipynb") and p.is_file()}


def shipped_notebooks() -> list[str]:
    """The file names of the notebooks shipped with kvmlab, in order."""
    return sorted(_shipped())


@dataclass
class CopyReport:
    """What :func:`copy_notebooks` did with each notebook (file names, in order).

    Attributes
    ----------
    directory : Path
        Where the notebooks are.
    copied : list of str
        Written (missing before, or replaced with ``force``).
    unchanged : list of str
        Already there, the same as the shipped one.
    kept : list of str
        Already there and changed by the student, so left alone (``force`` replaces them).
    """

    directory: Path
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for each kind of outcome there was."""
        lines = [f"copied {len(self.copied)} notebook(s) to {self.directory}"]
        if self.unchanged:
            lines.append(f"{len(self.unchanged)} already there, unchanged")
        if self.kept:
            lines.append(f"kept {len(self.kept)} notebook(s) you changed: "
                         f"{', '.join(self.kept)} (--force replaces them with the shipped "
                         "ones)")
        return "\n".join(lines)


def copy_notebooks(directory: str | Path, *, force: bool = False) -> CopyReport:
    """Copy the shipped notebooks into ``directory`` (created if needed).

    A notebook already there is left alone when it is the same as the shipped one, and
    also when it differs (the student changed it) unless ``force``.

    Parameters
    ----------
    directory : str or Path
        The folder to copy into.
    force : bool
        Replace notebooks that differ from the shipped ones.

    Returns
    -------
    CopyReport
        Which notebooks were copied, already there, or kept.

    Raises
    ------
    KvmlabError
        If ``directory`` is a file, or cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory(prefix="kvmlab-") as d:
    ...     _ = copy_notebooks(d)
    ...     (Path(d) / "01-cpu.ipynb").write_text("{}")
    ...     kept = copy_notebooks(d).kept
    ...     forced = copy_notebooks(d, force=True).copied
    2
    >>> kept, forced
    (['01-cpu.ipynb'], ['01-cpu.ipynb'])
    """
    target = Path(directory)
    report = CopyReport(target)
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, content in sorted(_shipped().items()):
            path = target / name
            if path.exists() and path.read_bytes() == content:
                report.unchanged.append(name)
            elif path.exists() and not force:
                report.kept.append(name)
            else:
                path.write_bytes(content)
                report.copied.append(name)
    except OSError as exc:
        raise KvmlabError(f"cannot copy the notebooks to {target}: "
                          f"{exc.strerror or exc}") from None
    return report


def lab_command(directory: str | Path, *, port: int = 8888, ip: str = "127.0.0.1",
                browser: bool | None = None) -> list[str]:
    """The command that starts JupyterLab on ``directory``.

    Parameters
    ----------
    directory : str or Path
        The folder JupyterLab serves.
    port, ip : int, str
        Where it listens (default ``127.0.0.1:8888``).
    browser : bool, optional
        Open a browser; by default only when there is a screen (``DISPLAY`` or
        ``WAYLAND_DISPLAY`` set).

    Examples
    --------
    >>> cmd = lab_command("nb", port=9999, browser=False)
    >>> cmd[1:3], "--no-browser" in cmd, "--port=9999" in cmd
    (['-m', 'jupyterlab'], True, True)
    """
    if browser is None:
        browser = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(directory)}",
           f"--ip={ip}", f"--port={port}",
           # the package folders' __init__.py are no notebooks
           "--ContentsManager.hide_globs=__pycache__", "--ContentsManager.hide_globs=*.pyc",
           "--ContentsManager.hide_globs=__init__.py"]
    if not browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def _notebooks(args: argparse.Namespace) -> int:
    report = copy_notebooks(args.dir, force=args.force)
    for name in report.copied:
        print(report.directory / name)
    print(report.summary(), file=sys.stderr)
    return 1 if report.kept else 0


def _lab(args: argparse.Namespace) -> int:
    report = copy_notebooks(args.dir)
    print(report.summary(), file=sys.stderr)
    cmd = lab_command(args.dir, port=args.port, ip=args.ip,
                      browser=False if args.no_browser else None)
    print(f"kvmlab: starting JupyterLab on {args.dir} at http://{args.ip}:{args.port}/lab "
          "(its full URL, with the token, follows; stop it with Ctrl-C)", file=sys.stderr,
          flush=True)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)
    return 0  # pragma: no cover - execv does not return


def add_parsers(sub: Any) -> None:
    """Add the ``notebooks`` and ``lab`` commands to the ``kvmlab`` command's subparsers."""
    nb = sub.add_parser("notebooks", help="copy the labs' notebooks into a folder")
    nb.add_argument("dir", type=Path, help="the folder (created if needed)")
    nb.add_argument("--force", action="store_true",
                    help="replace notebooks you changed with the shipped ones")
    nb.set_defaults(func=_notebooks)
    lab = sub.add_parser("lab", help="copy the notebooks if needed and open JupyterLab on them")
    lab.add_argument("dir", type=Path, nargs="?", default=DEFAULT_DIR,
                     help=f"the folder (default ./{DEFAULT_DIR})")
    lab.add_argument("--port", type=int, default=int(os.environ.get("KVMLAB_LAB_PORT", 8888)),
                     help="the port (default 8888, or KVMLAB_LAB_PORT)")
    lab.add_argument("--ip", default=os.environ.get("KVMLAB_LAB_IP", "127.0.0.1"),
                     help="the address to listen on (default 127.0.0.1, or KVMLAB_LAB_IP)")
    lab.add_argument("--no-browser", action="store_true",
                     help="only print the URL (the default without a screen)")
    lab.set_defaults(func=_lab)

