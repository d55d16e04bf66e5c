"""featgeom.real.saes: loading SAELens / featgeom / sparsify SAE folders and hub SAEs offline.

Fixtures are written by the libraries' own writers: eai-sparsify's ``Sae.save_to_disk`` and
SAELens's ``save_model``; the hub test builds a fake local hub cache and loads it through
``SAE.from_pretrained`` in a subprocess with HF_HUB_OFFLINE=1 and HF_HUB_CACHE pointing at it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sparsify = pytest.importorskip("sparsify")
pytest.importorskip("sae_lens")

from featgeom.errors import ArtifactError, ConfigError, ShapeError
from featgeom.real.saes import (
    CONVERSION_FILE,
    check_sae_width,
    convert_sparsify,
    load_sae,
    parse_hub_spec,
)

D_IN, N_LATENTS, K = 32, 128, 8
RELEASE, SAE_ID = "pythia-70m-deduped-res-sm", "blocks.3.hook_resid_post"
REPO_ID, FOLDER = "ctigges/pythia-70m-deduped__res-sm_processed", "3-res-sm"  # from pretrained_saes.yaml
PYTHIA_D_IN = 512  # Pythia-70m's d_model


def random_sparsify_sae(d_in: int = D_IN, n_latents: int = N_LATENTS, k: int = K, seed: int = 0,
                        dtype=None):
    """A sparsify SAE with random weights in every tensor (biases too, so the b_dec subtraction and
    the encoder bias matter)."""
    from sparsify import Sae, SaeConfig

    torch.manual_seed(seed)
    sae = Sae(d_in, SaeConfig(num_latents=n_latents, k=k), dtype=dtype)
    with torch.no_grad():
        for param in sae.parameters():
            param.copy_(torch.randn_like(param))
        sae.set_decoder_norm_to_unit_norm()
    return sae


@pytest.fixture(scope="module")
def sparsify_run(tmp_path_factory) -> tuple[Path, object]:
    """A sparsify training-run layout: run/config.json + run/layers.3/{cfg.json, sae.safetensors}."""
    run = tmp_path_factory.mktemp("sparsify") / "run"
    sae = random_sparsify_sae()
    sae.save_to_disk(run / "layers.3")
    (run / "config.json").write_text(json.dumps({"model": "EleutherAI/pythia-70m-deduped"}))
    return run, sae


def saelens_topk(d_in: int = 16, d_sae: int = 48, k: int = 4, seed: int = 1):
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    torch.manual_seed(seed)
    sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k))
    with torch.no_grad():
        for param in sae.parameters():
            param.copy_(torch.randn_like(param))
    return sae


def dense_from_topk(acts, indices, width: int):
    return torch.zeros(acts.shape[0], width).scatter(-1, indices, acts)


# ------------------------------------------------------------------------------------------
# the sparsify converter


def test_converted_sparsify_equals_sparsify_encode_and_decode(sparsify_run, tmp_path):
    run, ref = sparsify_run
    out = convert_sparsify(run / "layers.3", tmp_path / "converted")
    sae = load_sae(out)
    assert (sae.cfg.architecture(), sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.k) == ("topk", D_IN, N_LATENTS, K)
    assert sae.cfg.apply_b_dec_to_input is True and sae.dtype == torch.float32
    assert sae.cfg.metadata.hook_name == "blocks.3.hook_resid_post"
    assert sae.cfg.metadata.model_name == "EleutherAI/pythia-70m-deduped"
    x = 2.0 * torch.randn(256, D_IN, generator=torch.Generator().manual_seed(3)) + 0.5
    with torch.no_grad():
        top_acts, top_idx, _ = ref.encode(x)
        want = dense_from_topk(top_acts, top_idx, N_LATENTS)
        got = sae.encode(x)
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
        assert ((got > 0).sum(-1) == K).float().mean() > 0.9  # the check is about real top-k codes
        assert torch.allclose(sae.decode(got), ref.decode(top_acts, top_idx), atol=1e-5, rtol=1e-5)
        assert torch.allclose(sae(x), ref(x).sae_out, atol=1e-5, rtol=1e-5)
        # (batch, L, d) inputs as a hooked layer gives them
        assert torch.allclose(sae.encode(x.view(16, 16, D_IN)).view(256, -1), got, atol=1e-6)


def test_bfloat16_sparsify_converts_exactly_to_float32(tmp_path):
    ref = random_sparsify_sae(seed=4, dtype=torch.bfloat16)
    ref.save_to_disk(tmp_path / "layers.0")
    sae = load_sae(tmp_path / "layers.0")
    assert sae.dtype == torch.float32
    assert torch.equal(sae.W_enc, ref.encoder.weight.float().T)
    assert torch.equal(sae.W_dec, ref.W_dec.float())
    assert torch.equal(sae.b_dec, ref.b_dec.float()) and torch.equal(sae.b_enc, ref.encoder.bias.float())


def test_saelens_own_sparsify_loader_is_still_wrong(tmp_path):
    """Evidence for our converter (SAELens 6.54.12, eai-sparsify 1.3.3). If this test fails,
    SAELens's sparsify_disk_loader changed: check whether it is fixed."""
    from sae_lens import SAE
    from sae_lens.loading.pretrained_sae_loaders import sparsify_disk_loader

    random_sparsify_sae().save_to_disk(tmp_path / "layers.3")
    with pytest.raises(RuntimeError, match="size mismatch for W_dec"):  # it transposes W_dec
        SAE.load_from_disk(tmp_path / "layers.3", converter=sparsify_disk_loader)
    # num_latents == d_in: the transposed W_dec fits, and the SAE loads silently wrong
    square = random_sparsify_sae(n_latents=D_IN, seed=5)
    square.save_to_disk(tmp_path / "layers.1")
    theirs = SAE.load_from_disk(tmp_path / "layers.1", converter=sparsify_disk_loader)
    ours = load_sae(tmp_path / "layers.1")
    assert theirs.cfg.apply_b_dec_to_input is False  # sparsify always encodes x - b_dec
    assert torch.equal(theirs.W_dec.float(), square.W_dec.T.to(theirs.dtype).float())
    x = torch.randn(64, D_IN, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        want = square(x).sae_out
        assert (theirs(x).float() - want).abs().max() > 1.0
        assert torch.allclose(ours(x), want, atol=1e-5, rtol=1e-5)


def test_conversion_is_atomic_recorded_and_idempotent(sparsify_run, tmp_path):
    run, _ = sparsify_run
    dst = tmp_path / "out" / "sae"
    assert convert_sparsify(run / "layers.3", dst) == dst
    assert sorted(p.name for p in dst.parent.iterdir()) == ["sae"]  # no temporary left behind
    record = json.loads((dst / CONVERSION_FILE).read_text())
    import hashlib

    source = hashlib.sha256((run / "layers.3" / "sae.safetensors").read_bytes()).hexdigest()
    assert record["source_sha256"]["sae.safetensors"] == source
    assert set(record["files"]) == {"cfg.json", "sae_weights.safetensors"}
    before = (dst / "sae_weights.safetensors").stat().st_mtime_ns
    assert convert_sparsify(run / "layers.3", dst) == dst  # same source: kept as is
    assert (dst / "sae_weights.safetensors").stat().st_mtime_ns == before
    other = tmp_path / "other" / "layers.3"
    random_sparsify_sae(seed=9).save_to_disk(other)
    with pytest.raises(ArtifactError, match="other source files"):
        convert_sparsify(other, dst)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ArtifactError, match="not a featgeom sparsify conversion"):
        convert_sparsify(other, tmp_path / "plain")


def test_corrupt_converted_folder_is_detected_by_hash(sparsify_run, tmp_path):
    run, _ = sparsify_run
    dst = convert_sparsify(run / "layers.3", tmp_path / "c")
    weights = dst / "sae_weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # one bit in the last float: safetensors itself cannot see it
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sae_weights.safetensors"):
        load_sae(dst)


def test_multi_hookpoint_parent_lists_its_hookpoints(tmp_path):
    run = tmp_path / "run"
    for i, layer in enumerate(("layers.10", "layers.2", "layers.0")):
        random_sparsify_sae(d_in=8, n_latents=16, k=2, seed=i).save_to_disk(run / layer)
    with pytest.raises(ConfigError, match=r"3 hookpoints \(layers\.0, layers\.2, layers\.10\)"):
        convert_sparsify(run, tmp_path / "dst")
    with pytest.raises(ConfigError, match="point at one of them"):
        load_sae(run)
    assert not (tmp_path / "dst").exists()
    assert load_sae(run / "layers.10").cfg.d_in == 8


def test_sparsify_variants_without_a_saelens_equivalent_are_refused(tmp_path):
    from sparsify import Sae, SaeConfig

    Sae(8, SaeConfig(num_latents=16, k=4, activation="groupmax")).save_to_disk(tmp_path / "g")
    with pytest.raises(ConfigError, match="groupmax"):
        convert_sparsify(tmp_path / "g", tmp_path / "g-out")
    Sae(8, SaeConfig(num_latents=16, k=4, transcode=True)).save_to_disk(tmp_path / "t")
    with pytest.raises(ConfigError, match="transcoder"):
        load_sae(tmp_path / "t")


def test_corrupt_sparsify_files_name_the_file(tmp_path):
    random_sparsify_sae(d_in=8, n_latents=16, k=2).save_to_disk(tmp_path / "s")
    weights = tmp_path / "s" / "sae.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtifactError, match=r"sae\.safetensors: corrupt safetensors"):
        convert_sparsify(tmp_path / "s", tmp_path / "out")
    random_sparsify_sae(d_in=8, n_latents=16, k=2).save_to_disk(tmp_path / "c")
    cfg = json.loads((tmp_path / "c" / "cfg.json").read_text())
    (tmp_path / "c" / "cfg.json").write_text(json.dumps({**cfg, "num_latents": 32}))
    with pytest.raises(ArtifactError, match=r"encoder\.weight has shape \(16, 8\), cfg\.json says \(32, 8\)"):
        load_sae(tmp_path / "c")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------
# SAELens folders, featgeom artifacts, errors


def test_saelens_folder_round_trips(tmp_path):
    ref = saelens_topk()
    ref.save_model(tmp_path / "sl")
    sae = load_sae(str(tmp_path / "sl"))
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(sae, name), getattr(ref, name))
    check_sae_width(sae, 16, "model_a")


def test_featgeom_artifact_is_verified_on_load(tmp_path):
    from featgeom.sae.artifact import run_config, write_sae
    from featgeom.sae.config import SAETrainConfig

    ref = saelens_topk(seed=2)
    config = run_config(SAETrainConfig(arch="topk", width=48, l0=4), "family-x", "a")
    write_sae(tmp_path / "art", config, {"metrics": {}}, {"step": np.arange(3)}, ref)
    assert torch.equal(load_sae(tmp_path / "art").W_dec, ref.W_dec)
    weights = tmp_path / "art" / "sae_weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x10
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sae_weights.safetensors is corrupted"):
        load_sae(tmp_path / "art")


def test_corrupt_saelens_files_name_the_file(tmp_path):
    saelens_topk().save_model(tmp_path / "t")
    weights = tmp_path / "t" / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-50])
    with pytest.raises(ArtifactError, match=r"t/sae_weights\.safetensors: corrupt safetensors"):
        load_sae(tmp_path / "t")
    saelens_topk().save_model(tmp_path / "j")
    (tmp_path / "j" / "cfg.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"j/cfg\.json"):
        load_sae(tmp_path / "j")


def test_unrecognised_folder_and_bad_specs(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"junk is not an SAE folder: expected cfg\.json \+ sae_weights"):
        load_sae(tmp_path / "junk")
    with pytest.raises(ConfigError, match="not an existing path and not a hub SAE spec RELEASE:SAE_ID"):
        load_sae(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="device"):
        load_sae(tmp_path / "junk", device="tpu")


def test_check_sae_width_message():
    with pytest.raises(ShapeError, match="^model_b: SAE reads d_in=16 but the hooked layer has width 384$"):
        check_sae_width(saelens_topk(), 384, "model_b")


# ------------------------------------------------------------------------------------------
# hub specs


def test_hub_spec_syntax():
    assert parse_hub_spec(f"{RELEASE}:{SAE_ID}") == (RELEASE, SAE_ID)
    assert parse_hub_spec(f"{RELEASE}/{SAE_ID}") == (RELEASE, SAE_ID)  # known release: '/' is fine
    gemma = "gemma-scope-2b-pt-res-canonical:layer_12/width_16k/canonical"
    assert parse_hub_spec(gemma) == ("gemma-scope-2b-pt-res-canonical", "layer_12/width_16k/canonical")
    assert parse_hub_spec("org/repo:some/folder") == ("org/repo", "some/folder")
    with pytest.raises(ConfigError, match="RELEASE:SAE_ID, both non-empty"):
        parse_hub_spec(f"{RELEASE}:")


def test_unknown_release_and_id_suggest_close_names():
    with pytest.raises(ConfigError, match=f"unknown SAELens release 'pythia-70m-dedup-res-sm'.*{RELEASE}"):
        load_sae(f"pythia-70m-dedup-res-sm:{SAE_ID}")
    with pytest.raises(ConfigError, match=f"'blocks.3.hook_resid_pots' is not in SAELens release.*{SAE_ID}"):
        load_sae(f"{RELEASE}:blocks.3.hook_resid_pots")
    with pytest.raises(ConfigError, match=f"close SAELens releases: .*{RELEASE}"):
        load_sae(f"pythia-70m-dedup-res-sm/{SAE_ID}")


def write_fake_hub_sae(cache: Path, d_sae: int = 64) -> tuple[Path, str]:
    """A fake hub cache holding REPO_ID/FOLDER as SAELens's own save_model writes it (standard
    architecture, d_in = 512 as for Pythia-70m). Returns (the SAE folder in the snapshot, commit)."""
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{REPO_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    folder = repo / "snapshots" / commit / FOLDER
    torch.manual_seed(7)
    sae = StandardSAE(StandardSAEConfig(d_in=PYTHIA_D_IN, d_sae=d_sae))
    with torch.no_grad():
        for param in sae.parameters():
            param.copy_(torch.randn_like(param))
    sae.save_model(folder)
    return folder, commit


HUB_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from safetensors.torch import save_file
    from featgeom.errors import ConfigError
    from featgeom.real.saes import check_sae_width, load_sae
    sae = load_sae(sys.argv[1])
    check_sae_width(sae, 512, "pythia-70m-deduped")
    save_file({k: v.contiguous() for k, v in sae.state_dict().items()}, sys.argv[3])
    start = time.perf_counter()
    try:
        load_sae(sys.argv[2])
    except ConfigError as exc:
        print(json.dumps({"error": str(exc), "seconds": time.perf_counter() - start}))
""")


@pytest.mark.slow  # a fresh interpreter importing sae_lens: ~12 s idle, ~20 s on a loaded 2-core machine
def test_offline_hub_cache_loads_through_from_pretrained(tmp_path):
    from safetensors.torch import load_file

    cache = tmp_path / "hub"
    folder, _ = write_fake_hub_sae(cache)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
           "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "loaded.safetensors"
    uncached = f"{RELEASE}:blocks.4.hook_resid_post"
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT, f"{RELEASE}:{SAE_ID}", uncached, str(out)],
                          check=False, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded, stored = load_file(str(out)), load_file(str(folder / "sae_weights.safetensors"))
    assert set(loaded) == set(stored) == {"W_enc", "b_enc", "W_dec", "b_dec"}
    for name in stored:
        assert torch.equal(loaded[name], stored[name]), name
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    message = report["error"]
    assert "\n" not in message and report["seconds"] < 20  # after the imports; the retry loop it replaces takes 23-37 s
    for part in (RELEASE, "blocks.4.hook_resid_post", "HF_HUB_OFFLINE", "4-res-sm"):
        assert part in message


def test_uncached_and_corrupt_hub_entries_in_process(tmp_path, monkeypatch):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # tests/conftest.py sets HF_HUB_OFFLINE before any import
    cache = tmp_path / "hub"
    folder, _ = write_fake_hub_sae(cache, d_sae=16)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert load_sae(f"{RELEASE}:{SAE_ID}").cfg.d_sae == 16
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="not in the local hub cache .* HF_HUB_OFFLINE=1"):
        load_sae(f"{RELEASE}/blocks.5.hook_resid_post")
    assert time.perf_counter() - start < 20  # after the imports; far below the 23-37 s retry loop
    weights = folder / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-40])
    with pytest.raises(ArtifactError, match=r"3-res-sm/sae_weights\.safetensors: corrupt safetensors"):
        load_sae(f"{RELEASE}:{SAE_ID}")


def test_sparsify_sae_from_the_hub_cache_is_converted(tmp_path, monkeypatch):
    """sparsify:ORG/REPO/FOLDER (the paper's EleutherAI SAEs) reads the hub cache offline, converts
    the folder and equals sparsify's own encode; an uncached folder is one ConfigError at once."""
    from huggingface_hub import constants

    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "models--EleutherAI--sae-pythia-70m-32k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    sae = random_sparsify_sae(seed=3)
    sae.save_to_disk(repo / "snapshots" / commit / "layers.3")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_sae("sparsify:EleutherAI/sae-pythia-70m-32k/layers.3")
    x = torch.randn(64, D_IN)
    ours = loaded.encode(x)
    theirs = sae.encode(x)
    assert torch.allclose(ours, dense_from_topk(theirs.top_acts, theirs.top_indices, N_LATENTS), atol=1e-5)
    with pytest.raises(ConfigError, match="layers.4.*HF_HUB_OFFLINE=1|HF_HUB_OFFLINE=1.*layers.4"):
        load_sae("sparsify:EleutherAI/sae-pythia-70m-32k/layers.4")
    with pytest.raises(ConfigError, match="expected sparsify:ORG/REPO/FOLDER"):
        load_sae("sparsify:EleutherAI/layers.3")
