"""The results database of experiment runs: one SQLite file, one row per measured value.

Schema (``SCHEMA``; documented in docs/experiments.md):

* ``runs``: one row per resolved experiment (``config_hash`` = hash of the resolved spec), with
  its name, preset, config JSON and package versions.
* ``sessions``: one row per start of a run (``featgeom run`` invocation), with its start time and
  the time it last stored a job; a run's wall time (:meth:`ResultsDB.run_seconds`) is the length
  of the union of its sessions' intervals, so concurrent sessions are not counted twice and a
  killed session counts up to its last stored job.
* ``jobs``: one row per finished job (``train:<member>:s<seed>`` or ``compare:<condition>:s<seed_a>-s<seed_b>``)
  with its seconds and a JSON detail (e.g. the SAE's path and metrics).
* ``results``: one typed measurement per row (:data:`RESULT_COLUMNS`): experiment, the analysis
  that measured it (e.g. 'recovery', 'cross_member', 'sae_pairs', 'layers'), the condition as
  its axis values (``condition_json``: canonical JSON object axis -> value, a 2-list
  [value_a, value_b] for the axis two compared SAEs differ in; ``condition``: the same as a
  label), the two members and SAE seeds (equal for one-SAE analyses), the replicate (independent
  family draw, 0 when there is one), pairing mode ('' for values that do not depend on one),
  metric, value, p-value, null mean and std (NULL where no null applies), the null that produced
  them (``null_kind``: 'repair' or 'shuffle'; '' for values without one; a similarity tested with
  two nulls has one row per null), a note (why a value is NULL), versions and config hash.  The
  primary key makes a value impossible to store twice.

A job's rows and its ``jobs`` row are written in one transaction, so a run killed at any moment
has either all of a job's rows or none, and a resumed run skips exactly the jobs already stored.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
import uuid
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

from featgeom.errors import ArtifactError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    config_hash TEXT PRIMARY KEY, experiment TEXT NOT NULL, preset TEXT NOT NULL,
    config_json TEXT NOT NULL, versions_json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    config_hash TEXT NOT NULL, session TEXT NOT NULL, started REAL NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (config_hash, session));
CREATE TABLE IF NOT EXISTS jobs (
    config_hash TEXT NOT NULL, job TEXT NOT NULL, kind TEXT NOT NULL, seconds REAL NOT NULL,
    finished_at TEXT NOT NULL, detail_json TEXT NOT NULL, PRIMARY KEY (config_hash, job));
CREATE TABLE IF NOT EXISTS results (
    experiment TEXT NOT NULL, config_hash TEXT NOT NULL, analysis TEXT NOT NULL, condition TEXT NOT NULL,
    condition_json TEXT NOT NULL,
    member_a TEXT NOT NULL, member_b TEXT NOT NULL, seed_a INTEGER NOT NULL, seed_b INTEGER NOT NULL,
    replicate INTEGER NOT NULL DEFAULT 0,
    pairing TEXT NOT NULL, metric TEXT NOT NULL, value REAL, p_value REAL, null_mean REAL, null_std REAL,
    null_kind TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', featgeom_version TEXT NOT NULL, sae_lens_version TEXT NOT NULL,
    PRIMARY KEY (config_hash, analysis, condition_json, replicate, member_a, member_b, seed_a, seed_b, pairing,
                 metric, null_kind));
"""
DEFAULTS = {"note": "", "null_kind": "", "replicate": 0}  # columns a result row may leave out
RESULT_COLUMNS = ("experiment", "config_hash", "analysis", "condition", "condition_json", "member_a", "member_b",
                  "seed_a", "seed_b", "replicate", "pairing", "metric", "value", "p_value", "null_mean", "null_std",
                  "null_kind", "note", "featgeom_version", "sae_lens_version")


class ResultsDB:
    """The SQLite results file at ``path`` (created with SCHEMA if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(self._connect()) as con, con:
                con.executescript(SCHEMA)
                columns = {r["name"] for r in con.execute("PRAGMA table_info(results)")}
        except sqlite3.DatabaseError as exc:
            raise ArtifactError(f"{self.path}: not a featgeom results database ({exc})") from None
        missing = [c for c in RESULT_COLUMNS if c not in columns]
        if missing:
            raise ArtifactError(f"{self.path}: written by an older featgeom (its results table has no "
                                f"{', '.join(missing)} column); use a new output directory")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60)
        con.row_factory = sqlite3.Row
        return con

    def register_run(self, config_hash: str, experiment: str, preset: str, config: dict[str, Any],
                     versions: dict[str, str]) -> None:
        """Record the run (no-op when ``config_hash`` is already there)."""
        with closing(self._connect()) as con, con:
            con.execute("INSERT OR IGNORE INTO runs (config_hash, experiment, preset, config_json, versions_json, "
                        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (config_hash, experiment, preset, json.dumps(config, sort_keys=True),
                         json.dumps(versions, sort_keys=True), _now()))

    def start_session(self, config_hash: str) -> str:
        """Record that a session of the run starts now; return its id (for :meth:`touch_session`)."""
        session = uuid.uuid4().hex
        now = time.time()
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (config_hash, session, now, now))
        return session

    def touch_session(self, config_hash: str, session: str) -> None:
        """Record that ``session`` was still working now (after each stored job and at its end)."""
        with closing(self._connect()) as con, con:
            con.execute("UPDATE sessions SET last_seen = ? WHERE config_hash = ? AND session = ?",
                        (time.time(), config_hash, session))

    def run_seconds(self, config_hash: str) -> float:
        """Wall seconds the run has worked: the length of the union of its sessions' intervals
        [started, last_seen] (overlapping sessions count once)."""
        with closing(self._connect()) as con:
            spans = con.execute("SELECT started, last_seen FROM sessions WHERE config_hash = ? ORDER BY started",
                                (config_hash,)).fetchall()
        return union_length([(r["started"], r["last_seen"]) for r in spans])

    def finished_jobs(self, config_hash: str) -> dict[str, dict[str, Any]]:
        """job name -> its detail, for every job of the run already stored."""
        with closing(self._connect()) as con:
            rows = con.execute("SELECT job, detail_json FROM jobs WHERE config_hash = ?", (config_hash,)).fetchall()
        return {r["job"]: json.loads(r["detail_json"]) for r in rows}

    def record_job(self, config_hash: str, job: str, kind: str, seconds: float, detail: dict[str, Any],
                   rows: Iterable[dict[str, Any]] = ()) -> bool:
        """Store a finished job and its result rows in one transaction; False if it was already stored."""
        rows = list(rows)
        missing = [c for row in rows for c in RESULT_COLUMNS if c not in row and c not in DEFAULTS]
        if missing:
            raise ArtifactError(f"result row of job {job!r} lacks column {missing[0]!r}")
        with closing(self._connect()) as con, con:
            inserted = con.execute("INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                                   (config_hash, job, kind, seconds, _now(), json.dumps(detail, sort_keys=True)))
            if inserted.rowcount == 0:
                return False
            con.executemany(f"INSERT INTO results ({', '.join(RESULT_COLUMNS)}) VALUES "
                            f"({', '.join('?' * len(RESULT_COLUMNS))})",
                            [tuple(row.get(c, DEFAULTS[c]) if c in DEFAULTS else row[c] for c in RESULT_COLUMNS)
                             for row in rows])
        return True

    def runs(self) -> list[dict[str, Any]]:
        """Every run stored, oldest first (config and versions decoded)."""
        with closing(self._connect()) as con:
            rows = con.execute("SELECT * FROM runs ORDER BY created_at, config_hash").fetchall()
        return [{**dict(r), "config": json.loads(r["config_json"]), "versions": json.loads(r["versions_json"]),
                 "seconds": self.run_seconds(r["config_hash"])} for r in rows]

    def results(self, config_hash: str | None = None) -> list[dict[str, Any]]:
        """Result rows (of one run, or all), in a stable order."""
        query = "SELECT * FROM results" + (" WHERE config_hash = ?" if config_hash else "")
        query += (" ORDER BY experiment, analysis, condition_json, replicate, member_a, member_b, seed_a, seed_b, "
                  "pairing, metric, null_kind")
        with closing(self._connect()) as con:
            rows = con.execute(query, (config_hash,) if config_hash else ()).fetchall()
        return [dict(r) for r in rows]

    def export_csv(self, path: str | Path, config_hash: str | None = None) -> Path:
        """Write the result rows as CSV (header = RESULT_COLUMNS); return the path."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(RESULT_COLUMNS))
            writer.writeheader()
            writer.writerows(self.results(config_hash))
        tmp.replace(path)
        return path

    def export_parquet(self, path: str | Path, config_hash: str | None = None) -> Path:
        """Write the result rows as a Parquet file (columns RESULT_COLUMNS, typed: value, p_value,
        null_mean, null_std float64 with nulls; seeds and replicate int64); return the path.
        Needs pyarrow (``pip install 'featgeom[parquet]'``; ConfigError otherwise)."""
        from featgeom.errors import ConfigError

        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError("format: Parquet export needs pyarrow (pip install 'featgeom[parquet]')") from None
        types = {c: pa.string() for c in RESULT_COLUMNS}
        types.update({c: pa.int64() for c in ("seed_a", "seed_b", "replicate")})
        types.update({c: pa.float64() for c in ("value", "p_value", "null_mean", "null_std")})
        schema = pa.schema([(c, types[c]) for c in RESULT_COLUMNS])
        table = pa.Table.from_pylist([{c: r[c] for c in RESULT_COLUMNS} for r in self.results(config_hash)],
                                     schema=schema)
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
        return path


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of featgeom and of the libraries its numbers depend on (sae_lens, torch, numpy,
    scipy, and the distributions named in ``extra``), recorded with every run."""
    from importlib.metadata import version

    import featgeom

    found = {"featgeom": featgeom.__version__, "sae_lens": version("sae-lens"), "torch": version("torch"),
             "numpy": version("numpy"), "scipy": version("scipy")}
    return {**found, **{name: version(name) for name in extra}}


def version_columns(versions: dict[str, str]) -> dict[str, str]:
    """The two version columns of a results row, from :func:`package_versions`."""
    return {"featgeom_version": versions["featgeom"], "sae_lens_version": versions["sae_lens"]}


def union_length(spans: list[tuple[float, float]]) -> float:
    """Total length of the union of intervals ``[start, end]`` (sorted by start)."""
    total, reach = 0.0, float("-inf")
    for start, end in spans:
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
