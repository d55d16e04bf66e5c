"""Fixtures of the CLI tests: a place this process cannot write to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A directory path that cannot be created by this process (its parent refuses writes).

    Not root: a 0555 directory.  Root ignores permissions, so then a path under /sys (sysfs
    refuses mkdir even for root).  Skips where neither holds, after checking by trying.
    """
    if os.geteuid() != 0:
        parent = tmp_path / "read-only"
        parent.mkdir()
        parent.chmod(0o555)
        target = parent / "out"
    else:
        target = Path("/sys/featgeom-test-out")
    try:
        target.mkdir()
    except OSError:
        yield target
    else:
        target.rmdir()
        pytest.skip("no unwritable location on this machine")
    if os.geteuid() != 0:
        (tmp_path / "read-only").chmod(0o755)
