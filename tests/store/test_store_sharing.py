"""A store is shared: file permissions follow the umask, a killed writer's temporaries are cleaned,
destinations are checked before work, and a run's wall time counts overlapping sessions once."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from featgeom.errors import ArtifactError, ConfigError
from featgeom.store import (
    artifact_destination,
    read_artifact,
    remove_stale_temporaries,
    writable_destination,
    write_artifact,
)
from featgeom.store.artifacts import TMP_MARK, _writer_tag
from featgeom.store.results import ResultsDB, union_length


def write_small(path):
    return write_artifact(path, "demo", {"x": 1}, {"m": 2}, {"a": np.arange(3.0)}, "test-1")


def test_artifact_files_get_the_umasks_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_small(tmp_path / "art")
    finally:
        os.umask(old)
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in (tmp_path / "art").iterdir()}
    assert modes["arrays.safetensors"] == 0o644  # safetensors alone writes 0600
    assert set(modes.values()) == {0o644}
    assert stat.S_IMODE((tmp_path / "art").stat().st_mode) == 0o755


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    host = _writer_tag().rsplit("-", 1)[0]
    stale = tmp_path / f".art{TMP_MARK}{host}-{dead_pid()}-abc123"
    live = tmp_path / f".other{TMP_MARK}{host}-{os.getpid()}-def456"
    foreign = tmp_path / f".art{TMP_MARK}elsewhere-{dead_pid()}-xyz789"
    for d in (stale, live, foreign):
        d.mkdir()
        (d / "arrays.safetensors").write_bytes(b"half")
    write_small(tmp_path / "art")
    assert not stale.exists()
    assert live.exists() and foreign.exists()  # a live writer's, and another host's (shared storage)
    assert remove_stale_temporaries(tmp_path) == []
    read_artifact(tmp_path / "art")


def test_destinations_are_checked_without_writing(tmp_path):
    assert writable_destination(tmp_path / "a" / "b", "--out") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="--out: .* exists and is not a directory"):
        writable_destination(tmp_path / "file", "--out")
    with pytest.raises(ConfigError, match="--out: .* cannot be created .* is not a directory"):
        writable_destination(tmp_path / "file" / "sub", "--out")
    aid = write_small(tmp_path / "art")
    assert artifact_destination(tmp_path / "art", aid, "--out") == tmp_path / "art"
    with pytest.raises(ConfigError, match="already holds another artifact"):
        artifact_destination(tmp_path / "art", "0" * 16, "--out")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no valid artifact"):
        artifact_destination(tmp_path / "junk", aid, "--out")


def test_unwritable_destination(unwritable):
    with pytest.raises(ConfigError, match="--out: cannot write to"):
        writable_destination(unwritable, "--out")


def test_reading_a_file_or_nothing_as_an_artifact(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match="is a file, not an artifact directory"):
        read_artifact(tmp_path / "file")
    with pytest.raises(ArtifactError, match="no such artifact directory"):
        read_artifact(tmp_path / "none")


def test_union_length_counts_overlaps_once():
    assert union_length([]) == 0
    assert union_length([(0, 10), (5, 12), (20, 21)]) == pytest.approx(13)
    assert union_length([(0, 10), (2, 3)]) == pytest.approx(10)


def test_concurrent_sessions_count_once_and_a_killed_one_up_to_its_last_job(tmp_path):
    db = ResultsDB(tmp_path / "r.sqlite")
    db.register_run("h", "exp", "tiny", {}, {})
    first = db.start_session("h")
    second = db.start_session("h")  # a second `featgeom run` into the same OUT, concurrently
    time.sleep(0.3)
    db.touch_session("h", first)
    db.touch_session("h", second)  # `first` is then killed: it never touches again
    seconds = db.run_seconds("h")
    assert 0.3 <= seconds < 0.6  # not the sum of the two sessions (>= 0.6)
    assert db.runs()[0]["seconds"] == pytest.approx(seconds)
