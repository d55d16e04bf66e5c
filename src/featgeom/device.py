"""Where featgeom's torch work runs: ``"cpu"`` (the default), ``"cuda"`` or ``"cuda:N"``.

Two levels use a device:

* SAE training and encoding always run in torch; ``device`` says where (:func:`torch_device`).
* The comparison stages (activation correlation, pairing, similarity metrics and their nulls) have
  a NumPy / SciPy path, the default, whose numbers are featgeom's reference, and a torch path for
  accelerators. Their functions take ``device=None`` (the NumPy path) or a device (the torch path
  on that device; ``"cpu"`` runs the torch path on the CPU, which is how the tests prove the two
  paths equal). User-facing settings (CLI ``--device``, experiment YAML ``device:``) map
  ``"cpu"`` to the NumPy path and anything else to the torch path: :func:`compute_device`.

:func:`fixed_threads` pins how many CPU threads torch work uses (torch's intra-op pool and every
BLAS / OpenMP pool): float reductions split differently for different thread counts, so code whose
bits must not depend on the machine (SAE training, the rho_mm search) runs inside it.

Every device string is checked before any work (:func:`check_device`): an unknown string, CUDA on
a machine without it, or a device index the machine does not have is one ConfigError naming the
setting. Running out of accelerator memory becomes one ResourceError with the size that was asked
for (:func:`device_memory`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from featgeom.errors import ConfigError, ResourceError

DEVICE_TYPES = ("cpu", "cuda")
_PATTERN = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
# cuBLAS picks its reduction order per workspace; fixing the workspace makes its results repeatable
# (https://docs.nvidia.com/cuda/cublas/#results-reproducibility); torch reads it at cuBLAS start-up.
CUBLAS_WORKSPACE = ":4096:8"


def canonical_device(spec: object, name: str = "device") -> str:
    """The device string ``spec`` in canonical form ('cpu', 'cuda' or 'cuda:N'), without asking the
    machine (configs naming a GPU stay readable on a CPU machine); ConfigError naming ``name``
    when it is not a device string."""
    if not isinstance(spec, str) or not (match := _PATTERN.match(spec.strip().lower())):
        raise ConfigError(f"{name}: expected 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        if index not in (None, "0"):
            raise ConfigError(f"{name}: {spec!r}: the CPU has no device index (use 'cpu')")
        return "cpu"
    return kind if index is None else f"cuda:{int(index)}"


def check_device(spec: object, name: str = "device") -> str:
    """:func:`canonical_device`, and a ConfigError naming ``name`` when CUDA is asked for on a
    machine without it or the index is beyond the machine's devices. Cheap: CUDA is not
    initialised."""
    device = canonical_device(spec, name)
    if device == "cpu":
        return device
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"{name}: {spec!r} asked for, but this machine has no CUDA device "
                          f"(torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} "
                          "CUDA); use 'cpu'")
    count, index = torch.cuda.device_count(), device.partition(":")[2]
    if index and int(index) >= count:
        raise ConfigError(f"{name}: {spec!r} is out of range: this machine has {count} CUDA device(s) "
                          f"(cuda:0 to cuda:{count - 1})")
    return device


def torch_device(spec: object, name: str = "device") -> Any:
    """``spec`` (a string as :func:`check_device` accepts, or a ``torch.device``) as a checked
    ``torch.device``; on CUDA, sets CUBLAS_WORKSPACE_CONFIG (unless already set) so that cuBLAS
    results repeat."""
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    device = torch.device(check_device(spec, name))
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    return device


def optional_device(spec: object, name: str = "device") -> Any:
    """The device argument of the comparison stages: None stays None (the NumPy path), anything
    else becomes the checked ``torch.device`` (:func:`torch_device`; ConfigError naming ``name``)."""
    return None if spec is None else torch_device(spec, name)


def compute_device(spec: object, name: str = "device") -> Any:
    """The device of a user-facing setting for the comparison stages: None (the NumPy path) for
    'cpu', else the checked ``torch.device`` (the torch path)."""
    device = torch_device(spec, name)
    return None if device.type == "cpu" else device


def device_type(spec: object) -> str:
    """'cpu' or 'cuda' of a device string: what decides the bits of a result (the index only says
    which of several alike devices ran it)."""
    return canonical_device(spec).split(":")[0]


def describe(device: Any) -> str:
    """A device for reports and benchmarks: 'cpu (numpy)', 'cpu (torch)' or 'cuda:0 (NVIDIA H200)'."""
    if device is None:
        return "cpu (numpy)"
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return "cpu (torch)"


@contextmanager
def device_memory(what: str, needed_bytes: int | None = None) -> Iterator[None]:
    """Turn an out-of-memory error of torch inside the body into one ResourceError naming ``what``
    and, when known, the bytes it needed; the accelerator's cache is emptied first."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError as exc:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        need = f" (needs about {_size(needed_bytes)})" if needed_bytes else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        raise ResourceError(f"{what}: out of device memory{need}; {first}; use a smaller batch or "
                            "width, or a device with more memory") from None


def _size(n_bytes: int) -> str:
    """A byte count for messages: '1.50 GiB', '12.0 MiB', '3.2 KiB'."""
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:.2f} GiB"
    return f"{n_bytes / 2**20:.1f} MiB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.1f} KiB"


@contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Run the body with torch's intra-op threads and every BLAS / OpenMP pool at ``threads``;
    the caller's torch thread count and pool sizes are restored afterwards, also on errors."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    with threadpool_limits(limits=threads):
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)
