"""The run database: every run, recorded as it finishes.

Like Hypothesis's example database: a sweep first re-runs the seeds that
failed before (for the same scenario, chaos and core), so a regression is
re-checked before anything new is tried. Each result is committed on its
own, so killing a sweep part-way loses nothing already recorded.

SQLite under ``.syncbed/runs.sqlite3`` in the working directory (or
``$SYNCBED_HOME``). Wall-clock fields are for people; nothing in a
simulation reads them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

__all__ = ["RunDatabase", "default_home"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    seed INTEGER NOT NULL,
    chaos TEXT NOT NULL,
    core TEXT NOT NULL,
    ok INTEGER NOT NULL,
    failed TEXT NOT NULL,
    fingerprint TEXT,
    trace_path TEXT,
    reproduce TEXT,
    wall_seconds REAL,
    recorded_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_key ON runs (scenario, chaos, core, seed);
"""


def default_home() -> Path:
    return Path(os.environ.get("SYNCBED_HOME", ".syncbed"))


class RunDatabase:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.path = self.home / "runs.sqlite3"
        self._conn = sqlite3.connect(self.path, timeout=30)
        self._conn.executescript(SCHEMA)
        self._conn.commit()

    def record(self, report: dict, core: str) -> None:
        failed = [i["name"] for i in report.get("invariants", []) if not i["ok"]]
        self._conn.execute(
            "INSERT INTO runs (scenario, seed, chaos, core, ok, failed, fingerprint, trace_path, reproduce, "
            "wall_seconds, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                report["scenario"],
                report["seed"],
                report.get("chaos_spec", report["chaos"]),
                core,
                1 if report["ok"] else 0,
                json.dumps(failed),
                report.get("trace_sha256"),
                report.get("trace_file"),
                report.get("reproduce"),
                report.get("wall_seconds"),
                time.time(),
            ),
        )
        self._conn.commit()

    def failing_seeds(self, scenario: str, chaos: str, core: str) -> list[int]:
        """Seeds whose most recent run for this scenario/chaos/core failed."""
        rows = self._conn.execute(
            "SELECT seed, ok FROM runs WHERE scenario = ? AND chaos = ? AND core = ? ORDER BY id",
            (scenario, chaos, core),
        ).fetchall()
        last: dict[int, int] = {}
        for seed, ok in rows:
            last[seed] = ok
        return sorted(seed for seed, ok in last.items() if not ok)

    def runs(self, scenario: str | None = None) -> list[dict]:
        sql = "SELECT id, scenario, seed, chaos, core, ok, failed, fingerprint, reproduce FROM runs"
        args: tuple = ()
        if scenario is not None:
            sql += " WHERE scenario = ?"
            args = (scenario,)
        cols = ("id", "scenario", "seed", "chaos", "core", "ok", "failed", "fingerprint", "reproduce")
        return [dict(zip(cols, row)) for row in self._conn.execute(sql + " ORDER BY id", args)]

    def close(self) -> None:
        self._conn.close()
