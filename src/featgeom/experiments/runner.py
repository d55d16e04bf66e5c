"""Run a declarative experiment: build the family, train the SAEs, compare, store every value.

``run_experiment(spec, out)``:

1. checks OUT can be written, builds the families not yet stored (in memory) and checks the SAE
   settings before anything is written, then stores the families in the content-addressed store
   ``OUT/store`` (a write there also removes temporaries a killed run left behind);
2. plans one TrainJob per (replicate, member, SAE seed) and one CompareJob per (replicate,
   condition, seed pair) (see :meth:`CompareSpec.seed_pairs`; replicate r is the family drawn
   with seed family_seed + r); a compare job starts as soon as both of its SAEs exist;
3. runs the jobs serially (``workers=1``), in local worker processes (``workers>1``), or as Ray
   tasks (``ray=True``: a local Ray instance, or the cluster at ``ray_address``);
4. stores each finished job and its rows in ``OUT/results.sqlite`` in one transaction.

Killing the run at any moment loses only the jobs in flight; starting it again skips every stored
job (SAE training itself resumes from its last checkpoint in the store), so the finished database
has every row exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from featgeom.errors import ConfigError, FeatgeomError
from featgeom.experiments.jobs import CompareJob, TrainJob, job_detail, run_job, train_name
from featgeom.experiments.spec import ExperimentSpec
from featgeom.store import writable_destination
from featgeom.store.results import ResultsDB

DB_NAME = "results.sqlite"


@dataclass(frozen=True)
class RunSummary:
    """What a run did: where its results are, how many jobs it ran now / found stored."""

    out: Path
    config_hash: str
    jobs_total: int
    jobs_run: int
    seconds: float

    @property
    def db(self) -> Path:
        return self.out / DB_NAME


def versions() -> dict[str, str]:
    """Versions of featgeom and of the libraries its numbers depend on."""
    from importlib.metadata import version

    import featgeom

    return {"featgeom": featgeom.__version__, "sae_lens": version("sae-lens"), "torch": version("torch"),
            "numpy": version("numpy"), "scipy": version("scipy")}


def family_dirs(spec: ExperimentSpec, store: Path) -> list[tuple[Path, Any]]:
    """(store directory, config) of the family of every replicate (content-addressed by config)."""
    from featgeom.family import FamilyConfig
    from featgeom.family.io import GENERATOR, KIND
    from featgeom.store import artifact_id

    configs = [FamilyConfig.from_dict(spec.family_config(r)) for r in range(max(spec.replicate_counts()))]
    return [(store / f"family-{artifact_id(KIND, c.to_dict(), GENERATOR)}", c) for c in configs]


def check_train_configs(spec: ExperimentSpec, family: Any) -> None:
    """Build the training config of one SAE per member of ``family`` (replicate 0, the first seed of
    the member), so a bad SAE setting fails before any work (ConfigError naming ``sae.<field>``)."""
    from featgeom.experiments.jobs import train_config

    for member in ["base", *[spec.sweep.member_name(v) for v in spec.sweep.values]]:
        seed = spec.compare.member_seeds(spec.sae.seeds, member)[0]
        job = TrainJob("", "", member, seed, spec.sae.arch, spec.sae.samples, spec.sae.width_factor, spec.sae.l0)
        try:
            train_config(job, family)
        except ConfigError as exc:
            raise ConfigError(f"sae.{exc}") from None


def plan(spec: ExperimentSpec, fam_dirs: list[Path], store: Path) -> tuple[list[TrainJob], list[tuple[CompareJob, str, str]]]:
    """Train jobs for every (replicate, member, seed); compare jobs (with the names of the train jobs
    they need). ``fam_dirs[r]`` is replicate r's family.

    The compare jobs' SAE paths are filled in by :func:`_ready` once their train jobs finished.
    """
    s, c = spec.sae, spec.compare
    trains: list[TrainJob] = []
    compares = []
    for r, fam_dir in enumerate(fam_dirs):
        values = [v for v, count in zip(spec.sweep.values, spec.replicate_counts()) if count > r]
        members = ["base", *[spec.sweep.member_name(v) for v in values]]
        trains += [TrainJob(str(fam_dir), str(store), m, seed, s.arch, s.samples, s.width_factor, s.l0, r)
                   for m in members for seed in c.member_seeds(s.seeds, m)]
        for value in values:
            member = spec.sweep.member_name(value)
            for seed_a, seed_b in c.seed_pairs(s.seeds):
                job = CompareJob(str(fam_dir), "", "", "base", member, seed_a, seed_b, member, spec.sweep.variable,
                                 float(value), c.samples, c.seed + r, c.n_perm, tuple(c.modes), tuple(c.nulls), r)
                compares.append((job, train_name("base", seed_a, r), train_name(member, seed_b, r)))
    return trains, compares


def run_experiment(spec: ExperimentSpec, out: str | Path, *, workers: int = 1, ray: bool = False,
                   ray_address: str | None = None, progress: bool = True,
                   on_job: Callable[[str], None] | None = None) -> RunSummary:
    """Run (or resume, or just re-collect) ``spec`` into directory ``out``; see the module docstring.

    ``on_job(name)`` is called after each job is stored.
    """
    from featgeom.family import build_family, load, save

    if workers < 1:
        raise ConfigError(f"workers: must be >= 1, got {workers}")
    started = time.perf_counter()
    out = writable_destination(out, "out")
    store = out / "store"
    # first: an unreachable family or a bad SAE setting fails before anything is written
    dirs = family_dirs(spec, store)
    built = {path: build_family(config) for path, config in dirs if not path.exists()}
    first = dirs[0][0]
    check_train_configs(spec, built[first] if first in built else load(first))
    for path, family in built.items():
        save(family, path)
    fam_dirs = [path for path, _ in dirs]
    db = ResultsDB(out / DB_NAME)
    config_hash = spec.config_hash
    vers = versions()
    db.register_run(config_hash, spec.name, spec.preset, spec.to_dict(), vers)
    session = db.start_session(config_hash)
    trains, compares = plan(spec, fam_dirs, store)
    finished = db.finished_jobs(config_hash)
    total = len(trains) + len(compares)
    context = {"experiment": spec.name, "config_hash": config_hash, "featgeom_version": vers["featgeom"],
               "sae_lens_version": vers["sae_lens"]}
    ran = 0
    with _backend(workers, ray, ray_address) as backend, _progress(progress, total, len(finished), spec.name) as bar:
        pending_compares = [c for c in compares if c[0].name not in finished]
        todo: list[TrainJob | CompareJob] = [t for t in trains if t.name not in finished]
        todo += _ready(pending_compares, finished)
        in_flight: dict[Any, TrainJob | CompareJob] = {}
        while todo or in_flight:
            for job in todo:
                in_flight[backend.submit(job)] = job
            todo = []
            handle, result, seconds = backend.next_done(in_flight)
            job = in_flight.pop(handle)
            if isinstance(job, TrainJob):
                detail = {**job_detail(job), **result}
                db.record_job(config_hash, job.name, "train", seconds, detail)
                finished[job.name] = detail
                todo = _ready(pending_compares, finished)
            else:
                rows = [{**context, **row} for row in result]
                db.record_job(config_hash, job.name, "compare", seconds, job_detail(job), rows)
                finished[job.name] = job_detail(job)
            db.touch_session(config_hash, session)
            ran += 1
            bar(job.name)
            if on_job is not None:
                on_job(job.name)
    db.touch_session(config_hash, session)
    seconds = time.perf_counter() - started
    db.export_csv(out / "results.csv")
    return RunSummary(out, config_hash, total, ran, seconds)


def _ready(pending: list[tuple[CompareJob, str, str]], finished: dict[str, dict[str, Any]]) -> list[CompareJob]:
    """Pop the compare jobs whose two SAEs are trained, with the SAE paths filled in."""
    ready = [(job, a, b) for job, a, b in pending if a in finished and b in finished]
    for item in ready:
        pending.remove(item)
    return [replace(job, sae_a=finished[a]["path"], sae_b=finished[b]["path"]) for job, a, b in ready]


class _Serial:
    """Runs each job in this process when it is submitted."""

    def __init__(self) -> None:
        self.results: dict[int, tuple[Any, float]] = {}
        self.count = 0

    def submit(self, job: TrainJob | CompareJob) -> int:
        self.count += 1
        self.results[self.count] = _result(lambda: _timed_job(job), job)
        return self.count

    def next_done(self, in_flight: dict[Any, Any]) -> tuple[Any, Any, float]:
        handle = next(iter(in_flight))
        result, seconds = self.results.pop(handle)
        return handle, result, seconds

    def close(self, failed: bool = False) -> None:
        """Nothing to release."""


class _Pool:
    """Local worker processes (spawned)."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_init)

    def submit(self, job: TrainJob | CompareJob) -> Any:
        return self.pool.submit(_timed_job, job)

    def next_done(self, in_flight: dict[Any, Any]) -> tuple[Any, Any, float]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        future = next(iter(done))
        return future, *_result(future.result, in_flight[future])

    def close(self, failed: bool = False) -> None:
        """Wait for the workers; after a failure or Ctrl-C, drop queued jobs and stop the running
        ones (their partial work is discarded: artifacts are written atomically)."""
        if failed:
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _worker_init() -> None:
    """Set up a worker process: it dies with the driver, and ignores Ctrl-C (the terminal sends
    SIGINT to the whole process group; the driver alone handles it and stops the workers)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the driver dies (prctl PR_SET_PDEATHSIG), so a killed
    run leaves no orphan still writing into the store."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


class _Ray:
    """Ray tasks on a local instance (started here, ``workers`` CPUs) or an existing cluster."""

    def __init__(self, workers: int, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray: Ray is not installed (pip install 'featgeom[ray]')") from None
        self.ray = ray
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        self.remote = ray.remote(num_cpus=1)(_timed_job)

    def submit(self, job: TrainJob | CompareJob) -> Any:
        return self.remote.remote(job)

    def next_done(self, in_flight: dict[Any, Any]) -> tuple[Any, Any, float]:
        (ref,), _ = self.ray.wait(list(in_flight), num_returns=1)
        return ref, *_result(lambda: self.ray.get(ref), in_flight[ref])

    def close(self, failed: bool = False) -> None:
        """Stop the Ray instance this run started, with its workers (or disconnect from the
        cluster, where tasks in flight finish and store their SAEs for the rerun to find; they are
        not cancelled: ``ray.cancel(force=True)`` racing a finishing task aborts Ray 2.x's driver,
        measured here)."""
        self.ray.shutdown()


def _timed_job(job: TrainJob | CompareJob) -> tuple[Any, float]:
    """The job's result and the seconds it ran (in the process that ran it)."""
    t = time.perf_counter()
    return run_job(job), time.perf_counter() - t


def _result(get: Callable[[], Any], job: TrainJob | CompareJob) -> Any:
    """The job's result; a job's featgeom error is re-raised naming the job."""
    try:
        return get()
    except FeatgeomError as exc:
        raise type(exc)(f"job {job.name}: {exc}") from None
    except Exception as exc:  # Ray wraps task errors; unwrap a featgeom error or a Ctrl-C inside
        cause = getattr(exc, "cause", None)
        if isinstance(cause, FeatgeomError):
            raise type(cause)(f"job {job.name}: {cause}") from None
        if isinstance(cause, KeyboardInterrupt) or type(exc).__name__ == "TaskCancelledError":
            raise KeyboardInterrupt from None  # the terminal's SIGINT reached the task's worker too
        raise


@contextmanager
def _backend(workers: int, ray: bool, address: str | None) -> Iterator[Any]:
    """The serial, process-pool or Ray backend, closed on exit (without waiting after a failure)."""
    backend = _Ray(workers, address) if ray else _Pool(workers) if workers > 1 else _Serial()
    failed = True
    try:
        yield backend
        failed = False
    finally:
        backend.close(failed=failed)


@contextmanager
def _progress(enabled: bool, total: int, done: int, name: str) -> Iterator[Callable[[str], None]]:
    """One bar for the whole run (jobs done / total, elapsed, ETA; rich); yields ``advance(job)``."""
    if not enabled:
        yield lambda _job: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("jobs"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()) as bar:
        task = bar.add_task(name, total=total, completed=done)
        yield lambda job: bar.update(task, advance=1, description=f"{name} [{job}]")
