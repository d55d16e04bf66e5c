"""What a training run takes from the machine: a fixed thread count, and memory checked beforehand.

:func:`featgeom.device.fixed_threads` runs training with torch's intra-op threads and every BLAS / OpenMP pool
(threadpoolctl) at ``SAETrainConfig.threads``, restoring the caller's settings afterwards: the
floating-point reductions of some ops (TopK's auxiliary loss among them) are split differently
for different thread counts, so the count is part of a run's id and never taken from the caller.

:func:`check_memory` refuses a run whose estimated peak memory (:func:`estimate_bytes`) exceeds
what the machine (or the CUDA device) has available, before anything is allocated;
:func:`training_device` places a run on its device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from featgeom.device import torch_device
from featgeom.errors import ConfigError
from featgeom.sae.config import SAETrainConfig
from featgeom.sae.evaluate import EVAL_BATCH

GIB = 2**30
FLOAT_BYTES = 4
# (batch, width) float32 matrices alive at once during one training step (forward, losses and
# backward), rounded up from the peak RSS of 40,000-latent runs at batch 1024 on 32 dims.
TRAIN_COPIES = {"topk": 5, "batchtopk": 7, "matryoshka_batchtopk": 9, "jumprelu": 8, "gated": 9,
                "matching_pursuit": 5, "standard": 6}
EVAL_COPIES = 4  # (EVAL_BATCH, width) matrices while evaluating: pre-activations, latents, fired, truth
CALIBRATION_COPIES = 2  # (calibration samples, width) matrices while calibrating L0: latents, fired
PARAM_COPIES = 5  # parameter, gradient, two Adam moments, the inference SAE's copy
HUNGARIAN_FLOATS = 3  # per (latent, feature) pair: |cos| in float32, 1 - |cos| in float64
MEMINFO = "/proc/meminfo"
CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def estimate_bytes(cfg: SAETrainConfig, d_in: int, num_features: int, calibration_samples: int) -> int:
    """Estimated peak memory of training, L0 calibration and evaluation of ``cfg`` (bytes, beyond
    what the process already holds): width x float32 x (PARAM_COPIES x (2 d_in + 4) per-latent
    parameters + the largest of TRAIN_COPIES[arch] x batch_size, EVAL_COPIES x EVAL_BATCH and
    CALIBRATION_COPIES x calibration_samples activations + HUNGARIAN_FLOATS x num_features)."""
    activations = max(TRAIN_COPIES[cfg.arch] * cfg.batch_size, EVAL_COPIES * EVAL_BATCH,
                      CALIBRATION_COPIES * calibration_samples)
    per_latent = PARAM_COPIES * (2 * d_in + 4) + activations + HUNGARIAN_FLOATS * num_features
    return FLOAT_BYTES * cfg.width * per_latent


def available_bytes() -> int | None:
    """Memory this process can still allocate: MemAvailable of /proc/meminfo, capped by the
    cgroup's limit minus its usage (v2 or v1) when one is set; None where /proc/meminfo is not
    readable (not Linux), in which case no check is made."""
    try:
        lines = Path(MEMINFO).read_text().splitlines()
        available = next(int(line.split()[1]) * 1024 for line in lines if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    for limit_file, usage_file in CGROUP_FILES:
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and usage.isdigit():
            available = min(available, int(limit) - int(usage))
    return available


def check_memory(cfg: SAETrainConfig, d_in: int, num_features: int, calibration_samples: int) -> None:
    """ConfigError naming the width when :func:`estimate_bytes` exceeds the memory available: the
    host's (:func:`available_bytes`) on the CPU, the device's free memory on CUDA (the device is
    checked first: ConfigError naming ``device`` when it is not there)."""
    needed = estimate_bytes(cfg, d_in, num_features, calibration_samples)
    device = torch_device(cfg.device)
    if device.type == "cuda":
        available, where = torch.cuda.mem_get_info(device)[0], f"{device} memory"
    else:
        available, where = available_bytes(), "memory"
    if available is not None and needed > available:
        raise ConfigError(f"width: {cfg.width:,} latents on {d_in} dims need about {needed / GIB:,.1f} GiB "
                          f"(estimated peak of training and evaluation) but {max(available, 0) / GIB:,.1f} GiB "
                          f"of {where} is available; use a smaller width")


@contextmanager
def training_device(cfg: SAETrainConfig) -> Iterator[torch.device]:
    """Yield the checked torch.device of ``cfg.device``; on CUDA the body runs with torch's
    deterministic algorithms (``warn_only``: an op without a deterministic CUDA kernel warns
    instead of failing), restored afterwards, so a seed gives the same SAE on one GPU model."""
    device = torch_device(cfg.device)
    if device.type != "cuda":
        yield device
        return
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield device
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
