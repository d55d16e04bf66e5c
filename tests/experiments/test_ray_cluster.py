"""Ray clusters: a real two-node cluster on this machine (``ray start`` head and worker on
loopback) with a node killed mid-run, a node that cannot see OUT, an address nobody answers, and
a task Ray gives up on.

The nodes are told apart by their IPs (127.0.0.1 resolves to this machine's address for the head;
the worker is 127.0.0.2). Each node's processes are found by the process group of its ``ray
start`` (started in a new session) and the children of those processes (Ray's task workers have
groups of their own), and are killed by pid: no ``ray stop``, which would stop every Ray instance
on the machine, those of other tests included. The cluster uses token authentication with a token
made for the test (a token in ~/.ray would otherwise switch the head, but not the worker, to it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from featgeom.cli import exit_code

from .helpers import spec_yaml, stored_values, tiny_spec

RAY = str(Path(sys.executable).with_name("ray"))
WORKER_IP = "127.0.0.2"
BLIND_IP = "127.0.0.3"
START_SECONDS = 180  # bound on one `ray start` (a loaded 2-core machine takes ~10 s)
RUN_SECONDS = 600  # bound on one featgeom run (about a minute here)


class Cluster:
    """A Ray head on this machine (1 CPU) and the nodes added to it; :meth:`stop` kills them all."""

    def __init__(self, temp: Path) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.groups: list[int] = []
        self._start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                     "--include-dashboard", "false", "--temp-dir", str(temp)])

    def add_node(self, ip: str, prefix: tuple[str, ...] = ()) -> int:
        """Start a worker node (1 CPU) at ``ip``, its command run under ``prefix``; its process group."""
        return self._start(["--address", self.address, "--node-ip-address", ip], prefix)

    def _start(self, args: list[str], prefix: tuple[str, ...] = ()) -> int:
        proc = subprocess.Popen([*prefix, RAY, "start", *args, "--num-cpus", "1", "--disable-usage-stats"],
                                env=self.env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.groups.append(proc.pid)
        output, _ = proc.communicate(timeout=START_SECONDS)
        assert proc.returncode == 0, f"ray start {' '.join(args)} failed:\n{output[-3000:]}"
        return proc.pid

    def stop(self) -> None:
        for group in reversed(self.groups):
            kill_node(group)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh head node; every node of it is killed afterwards, whatever happened."""
    temp = Path(tempfile.mkdtemp(prefix="fgray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    head = None
    try:
        head = Cluster(temp)
        yield head
    finally:
        if head is not None:
            head.stop()
        shutil.rmtree(temp, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def node_processes(group: int) -> set[int]:
    """The pids of the live processes of process group ``group`` and of all their descendants
    (from /proc; zombies, which an init that does not reap would keep, are left out)."""
    parents: dict[int, int] = {}
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            state, ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]  # after '(comm)'
            if state == "Z":
                continue
            pid = int(stat.parent.name)
            parents[pid] = int(ppid)
            if int(pgrp) == group:
                members.add(pid)
    found, frontier = set(members), set(members)
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def kill_node(group: int) -> None:
    """SIGKILL every process of the node started in process group ``group``."""
    for pid in node_processes(group):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def running_tasks(group: int) -> list[int]:
    """Pids of the node's task workers now running a featgeom job (Ray titles them ``ray::<function>``)."""
    running = []
    for pid in node_processes(group):
        with suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_timed_job"):
                running.append(pid)
    return running


def stored_jobs(db: Path) -> list[str]:
    """Names of the jobs stored in ``db`` so far ([] before it has its tables)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as con:
            return [job for (job,) in con.execute("SELECT job FROM jobs")]
    except sqlite3.OperationalError:
        return []


def wait_for_task_on_node(db: Path, group: int, proc: subprocess.Popen, timeout: float = RUN_SECONDS) -> int:
    """Poll until a job is stored and the node of ``group`` runs one; how many are stored then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        stored = len(stored_jobs(db))
        if stored and running_tasks(group):
            return stored
        time.sleep(0.05)
    raise AssertionError(f"the run ended or timed out before the node ran a job (exit {proc.poll()})")


def featgeom_run(config: Path, out: Path, address: str, tmp: Path, env: dict[str, str]) -> subprocess.Popen:
    """``featgeom run CONFIG --preset tiny --ray-address ADDRESS --out OUT`` in the background
    (stdout and stderr to files in ``tmp``: Ray's warnings would fill a pipe)."""
    cmd = [sys.executable, "-m", "featgeom.cli", "run", str(config), "--preset", "tiny", "--ray-address", address,
           "--out", str(out), "--quiet"]
    with (tmp / "stdout").open("w") as stdout, (tmp / "stderr").open("w") as stderr:
        return subprocess.Popen(cmd, env=env, stdout=stdout, stderr=stderr)


@pytest.mark.slow
def test_a_node_killed_mid_run_loses_and_duplicates_nothing(cluster, tiny_run, tmp_path):
    """Kill every process of the worker node while it runs a job: Ray runs the job again on the
    head; the run ends with every job stored once and the numbers of the serial run."""
    worker = cluster.add_node(WORKER_IP)
    out = tmp_path / "out"
    proc = featgeom_run(spec_yaml(tiny_spec(), tmp_path / "exp.yaml"), out, cluster.address, tmp_path, cluster.env)
    try:
        stored = wait_for_task_on_node(out / "results.sqlite", worker, proc)
        kill_node(worker)
        proc.wait(timeout=RUN_SECONDS)
    finally:
        proc.kill()
        proc.wait()
    stdout, stderr = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert proc.returncode == 0, stderr[-5000:]
    assert 1 <= stored < tiny_run.jobs_total, "the kill must land mid-run"
    assert not node_processes(worker), "the worker node must be dead"
    jobs = stored_jobs(out / "results.sqlite")
    assert len(jobs) == len(set(jobs)) == tiny_run.jobs_total
    values = stored_values(out)
    assert len(values) == len(set(values)) and values == stored_values(tiny_run.out)
    assert f"{tiny_run.jobs_total} of {tiny_run.jobs_total} jobs run now" in stdout
    assert not list(out.glob("store/.probe-*"))


HIDE = ("unshare", "-m", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"')


def _can_hide() -> bool:
    """Whether this user may run a command with a directory hidden by a tmpfs in a mount namespace
    of its own (root, or CAP_SYS_ADMIN)."""
    with tempfile.TemporaryDirectory() as directory, suppress(OSError):
        return subprocess.run([*HIDE, directory, "true"], capture_output=True, check=False).returncode == 0
    return False


@pytest.mark.slow
@pytest.mark.skipif(not _can_hide(), reason="needs `unshare -m` and `mount` (root) to hide OUT from one node")
def test_a_node_that_cannot_see_out_stops_the_run_before_any_job(cluster, tmp_path):
    """A node whose mount namespace hides the shared directory (a tmpfs over it): one error naming
    the node and the path; no job run, nothing stored, no probe left."""
    shared = tmp_path / "shared"
    shared.mkdir()
    cluster.add_node(BLIND_IP, (*HIDE, str(shared)))
    out = shared / "out"
    proc = featgeom_run(spec_yaml(tiny_spec(), tmp_path / "exp.yaml"), out, cluster.address, tmp_path, cluster.env)
    try:
        proc.wait(timeout=RUN_SECONDS)
    finally:
        proc.kill()
        proc.wait()
    stderr = (tmp_path / "stderr").read_text().strip().splitlines()
    assert proc.returncode == 2
    assert stderr[-1].startswith(f"error: out: {out / 'store'} must be seen by every node")
    assert f"node(s) {BLIND_IP} (" in stderr[-1] and "cannot read it" in stderr[-1]
    assert "storage every node mounts at the same path" in stderr[-1]
    assert not out.exists()


def test_an_address_nobody_answers_fails_at_once(tmp_path, capsys):
    """A free port: exit 2 with one error naming the address within seconds, nothing written."""
    address = f"127.0.0.1:{_free_port()}"
    config = spec_yaml(tiny_spec(), tmp_path / "exp.yaml")
    started = time.monotonic()
    code = exit_code(["run", str(config), "--preset", "tiny", "--ray-address", address, "--out", str(tmp_path / "out"),
                      "--quiet"])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and seconds < 10
    assert len(err) == 1 and err[0].startswith(f"error: ray_address {address!r}: no Ray cluster answers at ")
    assert "start it with `ray start --head`" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_job_whose_worker_dies_on_every_try_is_one_error_naming_it(tmp_path):
    """What the run says when Ray gives up on a task (its worker died each time): rerun to resume."""
    import ray

    from featgeom.errors import ResourceError
    from featgeom.experiments.jobs import TrainJob
    from featgeom.experiments.runner import _Ray

    def exit_worker() -> None:  # local, so that Ray ships it by value (this test module is not on the workers' path)
        os._exit(1)

    backend = _Ray(1, None, tmp_path, "cpu")
    try:
        dies = ray.remote(max_retries=0)(exit_worker).remote()
        job = TrainJob("fam", "store", "base", 0, "topk", 1000, None, None)
        with pytest.raises(ResourceError, match=r"^job train:base:topk:s0@[0-9a-f]{10}: lost on the Ray cluster after 3 retries "
                                                r"\(WorkerCrashedError\); rerun the same command to resume$"):
            backend.next_done({dies: job})
    finally:
        backend.close()
