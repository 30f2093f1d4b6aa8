"""The three groups `make test` runs (``scripts/test.sh``) hold every test exactly once.

The script selects by marker: ``not live and not browser`` (the model tests), ``(live or
browser) and not alone`` (the host tests, beside the model tests) and ``alone``. They
partition the suite as long as every test marked ``alone`` is also marked ``live`` or
``browser``: an ``alone`` test without either would run twice, once beside other tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "scripts" / "test.sh"


def collected(expression: str) -> list[str]:
    """The test ids ``pytest -m EXPRESSION`` selects under tests/."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "-m", expression, "tests"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 5), done.stdout[-3000:] + done.stderr[-3000:]
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_script_selects_the_three_groups_this_test_checks():
    text = SCRIPT.read_text()
    for expression in ("not live and not browser", "(live or browser) and not alone", "alone"):
        assert f'-m "{expression}"' in text


def test_every_test_marked_alone_uses_the_host_and_the_groups_are_not_empty():
    assert collected("alone and not live and not browser") == []
    alone = collected("alone")
    assert any("test_twin_live.py" in t for t in alone)          # what must measure alone
    assert any("test_faults.py" in t for t in alone)
    assert not any("test_network_live.py" in t for t in alone)  # no need: it counts frames
