"""featgeom.device: device strings checked before any work, CUDA errors, out-of-memory errors."""

import pytest
import torch

from featgeom.device import (
    CUBLAS_WORKSPACE,
    canonical_device,
    check_device,
    compute_device,
    describe,
    device_memory,
    device_type,
    torch_device,
)
from featgeom.errors import ConfigError, ResourceError


@pytest.mark.parametrize("spec, canonical", [("cpu", "cpu"), (" CPU ", "cpu"), ("cpu:0", "cpu"), ("cuda", "cuda"),
                                             ("cuda:0", "cuda:0"), ("CUDA:07", "cuda:7")])
def test_canonical_forms(spec, canonical):
    assert canonical_device(spec) == canonical


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:-1", "cuda:x", "cpu:1", "mps", "", 0, None, ["cuda"]])
def test_bad_device_strings_name_the_setting(spec):
    with pytest.raises(ConfigError, match="^--device: "):
        canonical_device(spec, "--device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_refused(spec):
    with pytest.raises(ConfigError, match="device: .*no CUDA device.*use 'cpu'"):
        check_device(spec)
    with pytest.raises(ConfigError, match="no CUDA device"):
        compute_device(spec)


def test_device_index_beyond_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match=r"'cuda:2' is out of range: this machine has 2 CUDA device\(s\) "
                                          r"\(cuda:0 to cuda:1\)"):
        check_device("cuda:2")


def test_torch_device_sets_the_cublas_workspace(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert torch_device("cuda:0") == torch.device("cuda:0")
    import os

    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE


def test_cpu_means_the_numpy_path_for_comparisons():
    assert compute_device("cpu") is None
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device(torch.device("cpu")) == torch.device("cpu")
    assert device_type("cuda:3") == "cuda" and device_type("cpu") == "cpu"
    assert describe(None) == "cpu (numpy)" and describe(torch.device("cpu")) == "cpu (torch)"


def test_out_of_memory_becomes_one_resource_error():
    with pytest.raises(ResourceError, match=r"^null test: out of device memory \(needs about 1\.50 GiB\); "
                                            r"CUDA out of memory\. Tried"):
        with device_memory("null test", 3 * 2**29):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB\nmore detail")


def test_other_errors_pass_through_device_memory():
    with pytest.raises(ValueError, match="not memory"):
        with device_memory("x"):
            raise ValueError("not memory")


def test_sizes_in_messages_pick_their_unit():
    from featgeom.device import _size

    assert [_size(n) for n in (3 * 2**29, 12 * 2**20, 3277)] == ["1.50 GiB", "12.0 MiB", "3.2 KiB"]
