"""Run a declarative experiment: build the families, train the SAEs, run the analyses, store every value.

``run_experiment(spec, out)``:

1. checks the run's device (``device`` or the spec's; :mod:`featgeom.device`), that OUT can be
   written and (for a cluster) that the cluster address answers; builds the families not yet
   stored (in memory) and checks the SAE settings, all before anything is written;
2. opens the backend: serial (``workers=1``), local worker processes (``workers>1``), or Ray tasks
   (``ray=True``: a local Ray instance, or the cluster at ``ray_address``, which must give every
   node OUT at the same path, see :func:`check_store`, and GPUs for a CUDA run); then stores the
   families in the content-addressed store ``OUT/store`` (a write there also removes temporaries
   a killed run left behind);
3. plans the job graph (:func:`plan`): one family per (world point, replicate), one TrainJob
   per distinct SAE (content-addressed: grid points that need the same SAE share it; it keeps
   the snapshots the ``sae.checkpoint`` values of those points ask for), one
   AnalysisJob per (grid point, replicate, analysis, SAE or SAE pair); replicate r is the family
   drawn with seed family_seed + r; all on the run's device; an analysis job starts as soon as
   its SAEs exist;
4. stores each finished job and its rows in ``OUT/results.sqlite`` in one transaction.

Killing the run at any moment loses only the jobs in flight; starting it again skips every stored
job (SAE training itself resumes from its last checkpoint in the store), so the finished database
has every row exactly once. On Ray, a task whose worker or node dies is run again by Ray (up to
TASK_RETRIES times, on another node if need be); the driver stores each job once, when its one
result arrives, so a retried job is neither lost nor stored twice (docs/cluster.md).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from featgeom.device import canonical_device, check_device
from featgeom.errors import ConfigError, FeatgeomError, ResourceError
from featgeom.interrupts import raise_if_interrupted
from featgeom.experiments.jobs import AnalysisJob, TrainJob, job_detail, run_job, sae_path
from featgeom.experiments.spec import ExperimentSpec, Point, condition_label, world_of
from featgeom.store import canonical_json
from featgeom.store import writable_destination
from featgeom.store.results import ResultsDB, package_versions, version_columns

DB_NAME = "results.sqlite"
CONNECT_SECONDS = 5.0  # TCP connect timeout of the cluster address check
PROBE_SECONDS = 120.0  # how long every node of a cluster has to answer the store check
TASK_RETRIES = 3  # Ray runs a task again (up to this many times) when its worker or node dies
CHECKPOINT_AXIS = "sae.checkpoint"  # pairs across it: one run at consecutive checkpoints


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


def family_dirs(spec: ExperimentSpec, store: Path) -> dict[tuple[str, int], tuple[Path, Any]]:
    """(world point's canonical JSON, replicate) -> (store directory, config) of every family the
    grid needs (content-addressed by config)."""
    from featgeom.family import FamilyConfig
    from featgeom.family.io import GENERATOR, KIND
    from featgeom.store import artifact_id

    needed = max(spec.replicate_counts())
    out = {}
    for world in spec.world_points():
        for r in range(needed):
            data = spec.family_config(world, r)
            if r and not data["variants"] and not _needs_replicate(spec, world.condition_json, r):
                continue
            try:
                config = FamilyConfig.from_dict(data)
            except ConfigError as exc:
                raise ConfigError(f"axes: the family at {world.label or 'the preset world'} is invalid ({exc})") from None
            out[world.condition_json, r] = (store / f"family-{artifact_id(KIND, config.to_dict(), GENERATOR)}", config)
    return out


def _needs_replicate(spec: ExperimentSpec, world: str, replicate: int) -> bool:
    """Whether some grid point at ``world`` has more than ``replicate`` replicates."""
    return any(world_of(p) == world and count > replicate for p, count in zip(spec.points(), spec.replicate_counts()))


@dataclass(frozen=True)
class SAESettings:
    """The SAE settings at a grid point: the experiment's, with the point's ``sae.*`` axes
    (``revival`` None: the recipe's; ``checkpoint``: the fraction of the training the point's SAE
    is taken at, 1 = the final SAE)."""

    arch: str
    samples: int
    width_factor: float | None
    l0: int | None
    revival: str | None = None
    checkpoint: float = 1.0

    @classmethod
    def at(cls, spec: ExperimentSpec, point: Point) -> SAESettings:
        s, axes = spec.sae, point.stage("sae")
        return cls(axes.get("arch", s.arch), int(axes.get("samples", s.samples)), axes.get("width_factor", s.width_factor),
                   None if axes.get("l0", s.l0) is None else int(axes.get("l0", s.l0)), axes.get("revival"),
                   float(axes.get("checkpoint", 1.0)))


def check_train_configs(spec: ExperimentSpec, trains: list[TrainJob], families: dict[str, Any]) -> None:
    """Build the training config of every distinct SAE setting of replicate 0 on its family (an
    in-memory family for one not stored yet), so a bad SAE setting fails before any work
    (ConfigError naming ``sae.<field>``, e.g. "sae.revival: 'aux' needs a TopK-family or jumprelu
    SAE; use 'resample' for standard")."""
    from featgeom.experiments.jobs import train_config
    from featgeom.family import load

    seen = set()
    for job in trains:
        key = (job.family_dir, job.member, job.arch, job.samples, job.width_factor, job.l0, job.revival)
        if job.replicate or key in seen:
            continue
        seen.add(key)
        family = families.get(job.family_dir) or load(job.family_dir)
        try:
            train_config(job, family)
        except ConfigError as exc:
            raise ConfigError(f"sae.{exc}") from None


Planned = tuple[AnalysisJob, tuple[str, ...]]  # an analysis job and the train jobs it needs


def plan(spec: ExperimentSpec, fam_dirs: dict[tuple[str, int], Path], store: Path) -> tuple[list[TrainJob], list[Planned]]:
    """Train jobs (distinct, in grid order) and analysis jobs (with the names of the train jobs
    they need) of every grid point, replicate and analysis. ``fam_dirs[world, r]`` is the family of
    a world point in replicate r.

    * cross_member: the base's SAE seed i against the variant's (:meth:`CompareSpec.seed_pairs`);
    * sae_pairs across 'seed': every pair i < j of the member's SAE seeds, same settings;
    * sae_pairs across an sae axis X: for every unordered pair of X's values (a <= b in axis order,
      a == b included: the seed floor), SAE (a, seed i) against SAE (b, seed i+1 mod n); the row's
      condition has X -> [a, b];
    * a pair analysis across ``sae.checkpoint``: one run (same seed) at consecutive checkpoints,
      SAE (c_k, seed i) against SAE (c_{k+1}, seed i);
    * recovery: every SAE the point trains on its member (and, with variant axes, on the base,
      at the point without its variant axes).

    A grid point's ``sae.checkpoint`` c < 1 adds c to the ``checkpoints`` of its SAE's train job
    (one job per SAE whatever the checkpoints) and the analysis takes that SAE at c. The analysis
    jobs' SAE paths are filled in by :func:`_ready` once their train jobs finished.
    """
    from featgeom.experiments.analyses import ANALYSES

    c = spec.compare
    trains: dict[str, TrainJob] = {}
    planned: dict[str, Planned] = {}
    points = spec.points()
    counts = spec.replicate_counts()

    def train(fam: Path, member: str, seed: int, settings: SAESettings, r: int) -> str:
        job = TrainJob(str(fam), str(store), member, seed, settings.arch, settings.samples, settings.width_factor,
                       settings.l0, r, spec.device, settings.revival)
        known = trains.setdefault(job.name, job)
        if settings.checkpoint < 1 and settings.checkpoint not in known.checkpoints:
            trains[job.name] = replace(known, checkpoints=tuple(sorted((*known.checkpoints, settings.checkpoint))))
        return job.name

    def add(analysis: str, point_values: dict[str, Any], p: Point, r: int, sides: list[tuple[str, int, str]],
            checkpoints: tuple[float, float] | None = None) -> None:
        kind, settings = ANALYSES[analysis], compare_settings(spec, p)
        (member_a, seed_a, _), (member_b, seed_b, _) = sides[0], sides[-1]
        checkpoint_a, checkpoint_b = checkpoints or (SAESettings.at(spec, p).checkpoint,) * 2
        job = AnalysisJob(analysis, kind.run, kind.unit == "pair", str(fam_dirs[world_of(p), r]), "", "", member_a,
                          member_b, seed_a, seed_b, condition_label(point_values), canonical_json(point_values),
                          settings["samples"], c.seed + r, settings["n_perm"], settings["modes"], settings["nulls"],
                          None if c.metrics is None else tuple(c.metrics), r, spec.device, checkpoint_a, checkpoint_b)
        planned.setdefault(job.name, (job, tuple(dict.fromkeys(need for _, _, need in sides))))

    for p, count in zip(points, counts):
        for r in range(count):
            fam, member, here = fam_dirs[world_of(p), r], p.member, SAESettings.at(spec, p)
            seeds = c.member_seeds(spec.sae.seeds, member)
            for a in spec.analyses:
                kind = ANALYSES[a.name]
                if kind.unit == "sae":
                    for seed in seeds:
                        add(a.name, p.values, p, r, [(member, seed, train(fam, member, seed, here, r))])
                    if member != "base" and any(ANALYSES[b.name].pairs == "members" for b in spec.analyses):
                        base = p.without("variant")
                        for seed in spec.sae.seeds:
                            add(a.name, base.values, p, r, [("base", seed, train(fam, "base", seed, here, r))])
                elif kind.pairs == "members":
                    for seed_a, seed_b in c.seed_pairs(spec.sae.seeds):
                        add(a.name, p.values, p, r, [("base", seed_a, train(fam, "base", seed_a, here, r)),
                                                     (member, seed_b, train(fam, member, seed_b, here, r))])
                elif a.across == "seed":
                    for i, seed_a in enumerate(seeds):
                        for seed_b in seeds[i + 1:]:
                            add(a.name, p.values, p, r, [(member, seed_a, train(fam, member, seed_a, here, r)),
                                                         (member, seed_b, train(fam, member, seed_b, here, r))])
                else:
                    _add_axis_pairs(spec, a.name, a.across, p, r, fam, points, counts, seeds, add, train)
    return list(trains.values()), list(planned.values())


def _add_axis_pairs(spec: ExperimentSpec, name: str, across: str, p: Point, r: int, fam: Path, points: list[Point],
                    counts: list[int], seeds: list[int], add: Callable[..., None], train: Callable[..., str]) -> None:
    """The comparisons of analysis ``name`` at point ``p`` across axis ``across`` (see :func:`plan`):
    against every point equal to ``p`` but for a value of ``across`` at or after its own (across
    ``sae.checkpoint``: the next value only, same seed)."""
    values, member = spec.axis(across).values, p.member
    consecutive = across == CHECKPOINT_AXIS
    for q, count in zip(points, counts):
        same_elsewhere = {k: v for k, v in q.values.items() if k != across} == \
            {k: v for k, v in p.values.items() if k != across}
        step = values.index(q.values[across]) - values.index(p.values[across])
        if not same_elsewhere or (step != 1 if consecutive else step < 0) or count <= r:
            continue
        pair_values = {**p.values, across: [p.values[across], q.values[across]]}
        a_set, b_set = SAESettings.at(spec, p), SAESettings.at(spec, q)
        for i, seed_a in enumerate(seeds):
            seed_b = seed_a if consecutive else seeds[(i + 1) % len(seeds)]
            add(name, pair_values, p, r, [(member, seed_a, train(fam, member, seed_a, a_set, r)),
                                          (member, seed_b, train(fam, member, seed_b, b_set, r))],
                (a_set.checkpoint, b_set.checkpoint))


def compare_settings(spec: ExperimentSpec, p: Point) -> dict[str, Any]:
    """The comparison's samples, permutations, pairing modes and nulls at grid point ``p`` (its
    ``compare.*`` axes over the experiment's)."""
    c, axes = spec.compare, p.stage("compare")
    modes = (axes["mode"],) if "mode" in axes else tuple(c.modes)
    nulls = (axes["null"],) if "null" in axes else tuple(c.nulls)
    return {"samples": int(axes.get("samples", c.samples)), "n_perm": int(axes.get("n_perm", c.n_perm)), "modes": modes,
            "nulls": nulls}


def run_experiment(spec: ExperimentSpec, out: str | Path, *, workers: int = 1, ray: bool = False,
                   ray_address: str | None = None, device: str | None = None, progress: bool = True,
                   on_job: Callable[[str], None] | None = None) -> RunSummary:
    """Run (or resume, or just re-collect) ``spec`` into directory ``out``; see the module docstring.

    ``device`` (default: the spec's) is where the jobs' torch work runs; a device other than the
    spec's makes it another run (another config hash). ``on_job(name)`` is called after each job
    is stored.
    """
    from featgeom.family import save

    if workers < 1:
        raise ConfigError(f"workers: must be >= 1, got {workers}")
    cluster = ray_address if ray else None
    spec = run_spec(spec, device, ray=ray, cluster=cluster is not None)
    started = time.perf_counter()
    out = writable_destination(out, "out")
    out = out.absolute() if ray else out  # Ray workers need paths that do not depend on their directory
    if cluster is not None:
        check_ray_address(cluster)
    store = out / "store"
    # an unreachable family or a bad SAE setting fails before anything is written
    dirs = family_dirs(spec, store)
    built = {str(path): _built(config, key[0]) for key, (path, config) in dirs.items() if not path.exists()}
    fam_dirs = {key: path for key, (path, _) in dirs.items()}
    trains, analyses = plan(spec, fam_dirs, store)
    check_train_configs(spec, trains, built)
    with _backend(workers, ray, cluster, store, spec.device) as backend:
        for path, family in built.items():
            save(family, Path(path))
        total, ran = _run_jobs(spec, out, trains, analyses, backend, progress, on_job)
    seconds = time.perf_counter() - started
    ResultsDB(out / DB_NAME).export_csv(out / "results.csv")
    return RunSummary(out, spec.config_hash, total, ran, seconds)


def _built(config: Any, world: str) -> Any:
    """The family of ``config`` built in memory; ConfigError naming the grid's world point when a
    variant cannot be built there (e.g. an unreachable rho_mm)."""
    import json

    from featgeom.family import build_family

    try:
        return build_family(config)
    except ConfigError as exc:
        where = condition_label(json.loads(world)) or "the preset world"
        raise ConfigError(f"axes: the family at {where} cannot be built ({exc})") from None


def run_spec(spec: ExperimentSpec, device: str | None, *, ray: bool = False, cluster: bool = False) -> ExperimentSpec:
    """``spec`` with the run's device: ``device`` if given, else the spec's (ConfigError naming
    'device' on a bad string). It is checked against this machine (CUDA present, index in range)
    unless the jobs run on a cluster, whose GPUs are checked when the run joins it; with Ray a
    CUDA device takes no index (Ray gives each task its GPU)."""
    chosen = canonical_device(spec.device if device is None else device, "device")
    if ray and ":" in chosen:
        raise ConfigError(f"device: {chosen!r} with Ray: Ray gives each task one GPU of its node; use 'cuda'")
    if not cluster:
        check_device(chosen, "device")
    return spec if chosen == spec.device else replace(spec, device=chosen)


def _run_jobs(spec: ExperimentSpec, out: Path, trains: list[TrainJob], analyses: list[Planned], backend: Any,
              progress: bool, on_job: Callable[[str], None] | None) -> tuple[int, int]:
    """Register the run in OUT's database, run every job not stored yet on ``backend`` and store
    each once, when its result arrives; (jobs in the run, jobs run now)."""
    db = ResultsDB(out / DB_NAME)
    config_hash = spec.config_hash
    vers = package_versions()
    db.register_run(config_hash, spec.name, spec.preset, spec.to_dict(), vers)
    session = db.start_session(config_hash)
    finished = db.finished_jobs(config_hash)
    total = len(trains) + len(analyses)
    context = {"experiment": spec.name, "config_hash": config_hash, **version_columns(vers)}
    ran = 0
    with _progress(progress, total, len(finished), spec.name) as bar:
        pending = [a for a in analyses if a[0].name not in finished]
        todo: list[TrainJob | AnalysisJob] = [t for t in trains if t.name not in finished]
        todo += _ready(pending, finished)
        in_flight: dict[Any, TrainJob | AnalysisJob] = {}
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
                todo = _ready(pending, finished)
            else:
                rows = [{**context, **row} for row in result]
                db.record_job(config_hash, job.name, job.analysis, seconds, job_detail(job), rows)
                finished[job.name] = job_detail(job)
            db.touch_session(config_hash, session)
            raise_if_interrupted()  # a Ctrl-C whose KeyboardInterrupt Python dropped (featgeom.interrupts)
            ran += 1
            bar(job.name)
            if on_job is not None:
                on_job(job.name)
    db.touch_session(config_hash, session)
    return total, ran


def _ready(pending: list[Planned], finished: dict[str, dict[str, Any]]) -> list[AnalysisJob]:
    """Pop the analysis jobs whose SAEs are trained, with the SAE paths filled in (each at its
    checkpoint; ``sae_b`` '' for a one-SAE analysis)."""
    ready = [(job, needs) for job, needs in pending if all(n in finished for n in needs)]
    for item in ready:
        pending.remove(item)
    return [replace(job, sae_a=sae_path(finished[needs[0]], job.checkpoint_a),
                    sae_b=sae_path(finished[needs[-1]], job.checkpoint_b) if job.pair else "")
            for job, needs in ready]


class _Serial:
    """Runs each job in this process when it is submitted."""

    def __init__(self) -> None:
        self.results: dict[int, tuple[Any, float]] = {}
        self.count = 0

    def submit(self, job: TrainJob | AnalysisJob) -> int:
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

    def submit(self, job: TrainJob | AnalysisJob) -> Any:
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
    """Ray tasks on a local instance (started here, ``workers`` CPUs) or an existing cluster (at
    ``address``, checked to see ``store`` from every node); GPUs checked for a CUDA ``device``.

    Each task asks for :func:`task_resources` and is run again by Ray, up to TASK_RETRIES times,
    when its worker or node dies (``max_retries``; a featgeom error in a task is not retried)."""

    def __init__(self, workers: int, address: str | None, store: Path, device: str) -> None:
        self.ray = ray = import_ray()
        if address:
            _join(ray, address)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            if device != "cpu":
                _check_gpus(ray, f"the Ray cluster at {address!r}" if address else "the local Ray instance")
            if address:
                check_store(ray, store)
        except BaseException:
            ray.shutdown()
            raise
        self.remote = ray.remote(max_retries=TASK_RETRIES)(_timed_job)

    def submit(self, job: TrainJob | AnalysisJob) -> Any:
        return self.remote.options(**task_resources(job)).remote(job)

    def next_done(self, in_flight: dict[Any, Any]) -> tuple[Any, Any, float]:
        (ref,), _ = self.ray.wait(list(in_flight), num_returns=1)
        return ref, *_result(lambda: self._get(ref), in_flight[ref])

    def _get(self, ref: Any) -> Any:
        """The task's result; ResourceError when Ray gave up on it (its worker or node died on
        every try)."""
        lost = (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.NodeDiedError,
                self.ray.exceptions.ObjectLostError)
        try:
            return self.ray.get(ref)
        except lost as exc:
            raise ResourceError(f"lost on the Ray cluster after {TASK_RETRIES} retries ({type(exc).__name__}); "
                                "rerun the same command to resume") from None

    def close(self, failed: bool = False) -> None:
        """Stop the Ray instance this run started, with its workers (or disconnect from the
        cluster, where tasks in flight finish and store their SAEs for the rerun to find; they are
        not cancelled: ``ray.cancel(force=True)`` racing a finishing task aborts Ray 2.x's driver,
        measured here)."""
        self.ray.shutdown()


def task_resources(job: TrainJob | AnalysisJob) -> dict[str, float]:
    """The Ray resources a job's task asks for: one CPU, and one GPU when it runs on CUDA."""
    return {"num_cpus": 1} if job.device == "cpu" else {"num_cpus": 1, "num_gpus": 1}


def import_ray() -> Any:
    """The ``ray`` module; ConfigError when Ray is not installed."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray: Ray is not installed (pip install 'featgeom[ray]')") from None
    return ray


def check_ray_address(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """ResourceError unless the Ray cluster at ``address`` accepts a TCP connection within
    ``timeout`` seconds, so that a wrong address fails at once rather than after Ray's minutes of
    retries. The address is resolved as ``ray.init`` does ('auto': RAY_ADDRESS, else the cluster
    last started here by ``ray start``; 'localhost' becomes this node's address); 'ray://host:port'
    (Ray Client) is checked at host:port."""
    import_ray()
    host, port = _cluster_host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ResourceError(f"ray_address {address!r}: no Ray cluster answers at {host}:{port} "
                            f"({exc.strerror or exc}; waited up to {timeout:g} s); start it with "
                            "`ray start --head`, or fix the address") from None


def _cluster_host_port(address: str) -> tuple[str, int]:
    """(host, port) of the GCS (or Ray Client server) that ``address`` names; ConfigError when it
    names none, ResourceError when 'auto' finds no cluster."""
    from ray._private.services import canonicalize_bootstrap_address  # what ray.init resolves

    resolved: str | None = address.removeprefix("ray://")
    if not address.startswith("ray://"):
        try:
            resolved = canonicalize_bootstrap_address(address)
        except ConnectionError as exc:
            raise ResourceError(f"ray_address {address!r}: {exc}") from None
        except ValueError:
            resolved = None
    host, _, port = (resolved or "").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"ray_address: expected 'host:port', 'auto' or 'ray://host:port', got {address!r}")
    return host.strip("[]"), int(port)


def _join(ray: Any, address: str) -> None:
    """Connect this driver to the cluster at ``address``; ResourceError when it refuses."""
    try:
        ray.init(address=address, log_to_driver=False)
    except (ConnectionError, ray.exceptions.RayError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResourceError(f"ray_address {address!r}: cannot join the Ray cluster ({first})") from None


def _check_gpus(ray: Any, where: str) -> None:
    """ResourceError unless ``where`` (the Ray instance joined) has a GPU for the CUDA tasks."""
    if ray.cluster_resources().get("GPU", 0) < 1:
        raise ResourceError(f"device: CUDA asked for, but {where} has no GPU (start its nodes with "
                            "`ray start --num-gpus N`, or use --device cpu)")


def check_store(ray: Any, store: Path, timeout: float = PROBE_SECONDS) -> None:
    """Check that every alive node of the Ray cluster sees ``store`` (OUT/store) at the same path
    and runs the driver's versions: a probe file written here must be readable by a tiny task
    pinned to each node. ResourceError naming the nodes that cannot, differ, or do not answer
    within ``timeout`` seconds; the probe is removed. Versions are compared without their local
    labels (torch '2.5.1+cpu' on a CPU head equals '2.5.1+cu124' on a GPU node)."""
    nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    with _probe_file(store) as (probe, token):
        views = _node_views(ray, list(nodes), probe, timeout)
    mine = _release(package_versions())
    problems: dict[str, list[str]] = {}
    for node, view in views.items():
        if problem := _node_problem(view, token, mine, timeout):
            problems.setdefault(problem, []).append(f"{nodes[node]} ({node[:12]})")
    if problems:
        found = "; ".join(f"node(s) {', '.join(names)} {problem}" for problem, names in problems.items())
        raise ResourceError(f"out: {store} must be seen by every node of the Ray cluster: {found}; put OUT on "
                            "storage every node mounts at the same path, with the same featgeom environment on "
                            "every node")


def _node_problem(view: dict[str, Any] | None, token: str, mine: dict[str, str], timeout: float) -> str:
    """What is wrong with what a node saw ('' when nothing): no answer, no probe, other versions."""
    if view is None:
        return f"did not answer within {timeout:g} s"
    if view["probe"] != token:
        return "cannot read it"
    if _release(view["versions"]) != mine:
        return f"run other versions than the driver ({view['versions']}, not {mine})"
    return ""


@contextmanager
def _probe_file(store: Path) -> Iterator[tuple[Path, str]]:
    """A new file in ``store`` holding a random token: (path, token); removed afterwards, with the
    directories that were created for it."""
    created = [p for p in (store, *store.parents) if not p.exists()]
    store.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    probe = store / f".probe-{token}"
    probe.write_text(token)
    try:
        yield probe, token
    finally:
        probe.unlink(missing_ok=True)
        for path in created:  # deepest first; only when still empty
            with suppress(OSError):
                path.rmdir()


def _node_views(ray: Any, nodes: list[str], probe: Path, timeout: float) -> dict[str, dict[str, Any] | None]:
    """node id -> what :func:`_node_view` saw there (None: no answer in ``timeout`` s, or it failed)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(_node_view)
    refs = {task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(str(probe)): node
            for node in nodes}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    views: dict[str, dict[str, Any] | None] = dict.fromkeys(nodes)
    for ref in ready:
        with suppress(ray.exceptions.RayError):
            views[refs[ref]] = ray.get(ref)
    return views


def _release(vers: dict[str, str]) -> dict[str, str]:
    """Versions without their local labels ('2.5.1+cu124' -> '2.5.1')."""
    return {name: version.split("+")[0] for name, version in vers.items()}


def _node_view(probe: str) -> dict[str, Any]:
    """What a node sees: the probe file's text ('' when it cannot read it) and its versions."""
    try:
        text = Path(probe).read_text()
    except OSError:
        text = ""
    return {"probe": text, "versions": package_versions()}


def _timed_job(job: TrainJob | AnalysisJob) -> tuple[Any, float]:
    """The job's result and the seconds it ran (in the process that ran it)."""
    t = time.perf_counter()
    return run_job(job), time.perf_counter() - t


def _result(get: Callable[[], Any], job: TrainJob | AnalysisJob) -> Any:
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
def _backend(workers: int, ray: bool, address: str | None, store: Path, device: str) -> Iterator[Any]:
    """The serial, process-pool or Ray backend, closed on exit (without waiting after a failure)."""
    backend = _Ray(workers, address, store, device) if ray else _Pool(workers) if workers > 1 else _Serial()
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
