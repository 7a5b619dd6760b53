"""The README's examples work as written."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_minimal_core_plugs_in_and_provisions_each_won_deal_once():
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "quote-to-cash", "--seed", "2", "--chaos", "default",
         "--core", "docs/minimal_core.py:make_core", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    assert report["core"] == "docs/minimal_core.py:make_core"
    assert report["counts"]["psa"]["projects"] > 0
