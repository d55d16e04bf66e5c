"""Pretrained sparse autoencoders as SAELens inference SAEs, and an EleutherAI sparsify converter.

:func:`load_sae` accepts four kinds of spec and always returns a ``sae_lens`` SAE:

* a SAELens SAE folder: ``cfg.json`` + ``sae_weights.safetensors`` (``SAE.load_from_disk``);
* a featgeom SAE artifact directory (:mod:`featgeom.sae.artifact`; a SAELens folder plus a
  manifest): loaded through featgeom's own loader, which verifies the sha256 of every file;
* an EleutherAI sparsify folder: ``cfg.json`` + ``sae.safetensors`` as ``Sae.save_to_disk`` writes
  it; converted by :func:`convert_sparsify` (into a temporary folder) and then loaded;
* ``"RELEASE:SAE_ID"``, a SAELens pretrained release and SAE id (``SAE.from_pretrained``), e.g.
  ``"pythia-70m-deduped-res-sm:blocks.3.hook_resid_post"``. Release names contain neither ':' nor
  '/', SAE ids contain no ':' (checked against SAELens 6.54.12's pretrained_saes.yaml), so the first
  ':' splits the spec unambiguously. ``"RELEASE/SAE_ID"`` is accepted too when the text before the
  first '/' is a known release (ids themselves may hold '/', e.g. ``layer_12/width_16k/canonical``);
  a hub repo id used directly as the release (it holds a '/') needs the ':' form: ``"org/repo:folder"``.
  An existing local path always wins over the hub reading of a spec;
* ``"sparsify:ORG/REPO/FOLDER"``, an EleutherAI sparsify SAE on the hub (e.g. the universality
  paper's ``sparsify:EleutherAI/sae-pythia-70m-32k/layers.3``): that folder is fetched into the
  hub cache (only read from it when offline), then converted and loaded as a local sparsify folder.

With ``HF_HUB_OFFLINE=1`` only the local hub cache is read: an SAE not in it is one ConfigError at
once, naming the release, the id and HF_HUB_OFFLINE.

Why our own sparsify converter: SAELens 6.54.12's ``sparsify_disk_loader`` transposes ``W_dec``
(sparsify stores it as [num_latents, d_in], which is already SAELens's layout), so a real
``eai-sparsify`` 1.3.3 save fails to load with a size mismatch, or, when num_latents == d_in, loads
silently wrong; it also sets ``apply_b_dec_to_input = not normalize_decoder`` (False for sparsify's
default), whereas sparsify always encodes ``x - b_dec``, and loads in bfloat16
(tests/real/test_saes.py pins this down so we notice when upstream changes).

sparsify's SAE (``sparsify.sparse_coder.SparseCoder``, not a transcoder) computes, for x (..., d_in)::

    pre    = relu((x - b_dec) @ encoder.weight.T + encoder.bias)        # (..., num_latents)
    acts   = pre kept at its k largest entries, zero elsewhere
    x_hat  = acts @ W_dec + b_dec                                       # W_dec (num_latents, d_in)

which is exactly SAELens's TopK SAE with W_enc = encoder.weight.T (d_in, d_sae), b_enc =
encoder.bias, W_dec as stored (d_sae, d_in), b_dec, k from cfg.json and apply_b_dec_to_input =
True (SAELens takes the top k before the ReLU and sparsify after it; both leave the same dense
activations).
"""

from __future__ import annotations

import difflib
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import featgeom
from featgeom.device import check_device
from featgeom.errors import ArtifactError, ConfigError, ShapeError
from featgeom.store.artifacts import atomic_directory, sha256

SAELENS_FILES = ("cfg.json", "sae_weights.safetensors")
SPARSIFY_FILES = ("cfg.json", "sae.safetensors")
ARTIFACT_MANIFEST = "manifest.json"
CONVERSION_FILE = "featgeom_conversion.json"  # sidecar of a converted folder: provenance + hashes
CONVERSION_FORMAT = "featgeom-sparsify-conversion/1"
CONVERTER = f"featgeom-{featgeom.__version__}/sparsify-convert-1"
SPARSIFY_HUB = "sparsify:"  # prefix of a sparsify SAE on the hub: sparsify:ORG/REPO/FOLDER
SPARSIFY_KEYS = ("encoder.weight", "encoder.bias", "W_dec", "b_dec")
_LAYER_FOLDER = re.compile(r"^(?:.*\.)?layers[._](\d+)$")


# --------------------------------------------------------------------------------------------
# public API


def load_sae(spec: str | Path, device: str = "cpu") -> Any:
    """The SAELens inference SAE that ``spec`` names (see the module docstring for the forms).

    Returns a ``sae_lens.SAE`` on ``device`` whose ``encode`` maps (..., d_in) to (..., d_sae) and
    ``decode`` maps back. ConfigError for a spec that is none of the forms (naming what was
    expected), an unknown release or id (with close names), or a hub SAE that is not cached while
    offline; ArtifactError naming the file for a corrupt or inconsistent stored file.
    """
    device = check_device(device, "device")
    text = str(spec)
    if not text.strip():
        raise ConfigError("sae: empty SAE spec (expected a folder or RELEASE:SAE_ID)")
    path = Path(text).expanduser()
    if path.exists():
        return _load_local(path, device)
    if text.startswith(SPARSIFY_HUB):
        return _load_local(sparsify_hub_folder(text[len(SPARSIFY_HUB):]), device)
    release, sae_id = parse_hub_spec(text)
    return _load_from_hub(release, sae_id, device)


def convert_sparsify(src: str | Path, dst: str | Path) -> Path:
    """Convert the EleutherAI sparsify SAE folder ``src`` into a SAELens TopK SAE folder ``dst``.

    ``dst`` receives ``cfg.json`` (architecture "topk", d_in, d_sae = num_latents, k, dtype
    float32, apply_b_dec_to_input True), ``sae_weights.safetensors`` (W_enc = encoder.weight.T
    (d_in, d_sae), b_enc = encoder.bias (d_sae,), W_dec (d_sae, d_in) as stored, b_dec (d_in,)) and
    ``featgeom_conversion.json`` (the source path, sha256 of the source files and of the written
    files, the converter version). Written atomically (a temporary sibling renamed into place).
    An existing ``dst`` converted from byte-identical source files is returned as is; anything else
    there raises ArtifactError (no overwriting). Returns ``dst``.
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    _require_sparsify_folder(src)
    sources = {name: sha256(src / name) for name in SPARSIFY_FILES}
    if dst.exists():
        return _existing_conversion(dst, src, sources)
    sae = sparsify_to_saelens(src)
    record = {"format": CONVERSION_FORMAT, "converter": CONVERTER, "source": str(src.resolve()),
              "source_sha256": sources}
    with atomic_directory(dst) as tmp:
        sae.save_model(tmp)
        record["files"] = {name: sha256(tmp / name) for name in SAELENS_FILES}
        (tmp / CONVERSION_FILE).write_text(json.dumps(record, sort_keys=True, indent=2))
    return _existing_conversion(dst, src, sources)  # verifies what landed (or a concurrent writer's copy)


def check_sae_width(sae: Any, d_model: int, name: str) -> None:
    """ShapeError "NAME: SAE reads d_in=X but the hooked layer has width Y" unless X == Y."""
    d_in = getattr(getattr(sae, "cfg", None), "d_in", None)
    if d_in is None:
        raise ConfigError(f"{name}: not a SAELens SAE (no cfg.d_in): {type(sae).__name__}")
    if int(d_in) != int(d_model):
        raise ShapeError(f"{name}: SAE reads d_in={int(d_in)} but the hooked layer has width {int(d_model)}")


def parse_hub_spec(spec: str) -> tuple[str, str]:
    """(release, sae_id) of a hub spec "RELEASE:SAE_ID" (or "RELEASE/SAE_ID" for a known release).

    ConfigError for a spec that is neither (naming the forms expected, with close release names).
    """
    if ":" in spec:
        release, _, sae_id = spec.partition(":")
        if not release or not sae_id:
            raise ConfigError(f"sae: {spec!r}: a hub SAE is RELEASE:SAE_ID, both non-empty")
        return release, sae_id
    head, sep, tail = spec.partition("/")
    releases = _pretrained_directory()
    if sep and tail and head in releases:
        return head, tail
    raise ConfigError(
        f"sae: {spec!r} is not an existing path and not a hub SAE spec RELEASE:SAE_ID"
        f"{_close_hint(head, releases, 'SAELens releases')}; a local SAE is a folder with "
        f"{' + '.join(SAELENS_FILES)} (SAELens), {' + '.join(SPARSIFY_FILES)} (EleutherAI sparsify) "
        f"or a featgeom SAE artifact")


def sae_folder_format(path: Path) -> str:
    """Which SAE format the folder ``path`` holds: "featgeom", "saelens" or "sparsify".

    ConfigError naming the path and the formats expected otherwise; for a folder of per-hookpoint
    subfolders (sparsify's multi-hookpoint layout) the message lists the hookpoints.
    """
    if not path.is_dir():
        raise ConfigError(f"sae: {path} is a file, not an SAE folder "
                          f"({' + '.join(SAELENS_FILES)}, or {' + '.join(SPARSIFY_FILES)})")
    if (path / ARTIFACT_MANIFEST).is_file():
        return "featgeom"
    if all((path / name).is_file() for name in SAELENS_FILES):
        return "saelens"
    if all((path / name).is_file() for name in SPARSIFY_FILES):
        return "sparsify"
    hookpoints = hookpoint_folders(path)
    if hookpoints:
        shown = ", ".join(hookpoints[:8]) + (", ..." if len(hookpoints) > 8 else "")
        noun = "hookpoint" if len(hookpoints) == 1 else "hookpoints"
        raise ConfigError(f"sae: {path} holds SAEs for {len(hookpoints)} {noun} ({shown}); "
                          f"point at one of them, e.g. {path / hookpoints[0]}")
    found = sorted(p.name for p in path.iterdir())[:8]
    raise ConfigError(
        f"sae: {path} is not an SAE folder: expected {' + '.join(SAELENS_FILES)} (SAELens), "
        f"{' + '.join(SPARSIFY_FILES)} (EleutherAI sparsify) or a featgeom SAE artifact "
        f"({ARTIFACT_MANIFEST}); found {found or 'nothing'}")


def hookpoint_folders(path: Path) -> list[str]:
    """Names of the subfolders of ``path`` that hold an SAE (sparsify or SAELens files), sorted
    naturally (layers.2 before layers.10)."""
    names = [p.name for p in path.iterdir() if p.is_dir() and (p / "cfg.json").is_file()
             and ((p / SPARSIFY_FILES[1]).is_file() or (p / SAELENS_FILES[1]).is_file())]
    return sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def sparsify_to_saelens(src: Path) -> Any:
    """The SAELens TopK SAE (float32, CPU) equal to the sparsify SAE in folder ``src``."""
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    cfg = sparsify_config(src)
    weights = sparsify_weights(src, cfg)
    hookpoint = src.resolve().name
    layer = _LAYER_FOLDER.match(hookpoint)
    meta = SAEMetadata(hook_name=f"blocks.{layer.group(1)}.hook_resid_post" if layer else hookpoint,
                       sparsify_hookpoint=hookpoint, converted_by=CONVERTER)
    model = _sparsify_model_name(src)
    if model is not None:
        meta.model_name = model
    sae_cfg = TopKSAEConfig(d_in=cfg["d_in"], d_sae=cfg["num_latents"], k=cfg["k"], dtype="float32",
                            device="cpu", apply_b_dec_to_input=True, normalize_activations="none",
                            rescale_acts_by_decoder_norm=False, metadata=meta)
    sae = TopKSAE(sae_cfg)
    state = {"W_enc": weights["encoder.weight"].T.contiguous(), "b_enc": weights["encoder.bias"],
             "W_dec": weights["W_dec"].contiguous(), "b_dec": weights["b_dec"]}
    sae.load_state_dict(state, strict=True)
    return sae


def sparsify_config(src: Path) -> dict[str, Any]:
    """sparsify's cfg.json in ``src``, checked: {"d_in", "num_latents", "k", ...} as ints.

    ConfigError for SAEs that SAELens's TopK SAE cannot represent (groupmax activation, a
    transcoder, a skip connection); ArtifactError for a missing / unreadable / inconsistent file.
    """
    file = src / "cfg.json"
    cfg = _read_json(file)
    if not isinstance(cfg, dict):
        raise ArtifactError(f"{file}: not a JSON object")
    if cfg.get("activation", "topk") != "topk":
        raise ConfigError(f"sae: {src}: sparsify activation {cfg['activation']!r} has no SAELens "
                          f"equivalent (only 'topk' converts)")
    for flag, what in (("transcode", "a transcoder"), ("skip_connection", "has a skip connection")):
        if cfg.get(flag):
            raise ConfigError(f"sae: {src}: the sparsify SAE is {what} ({flag}=true); only plain "
                              f"TopK SAEs convert to SAELens")
    try:
        d_in = int(cfg["d_in"])
        num_latents = int(cfg.get("num_latents") or 0) or d_in * int(cfg.get("expansion_factor", 32))
        k = int(cfg.get("k", 32))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{file}: not a sparsify cfg.json (bad or missing {exc})") from None
    if d_in < 1 or not 1 <= k <= num_latents:
        raise ArtifactError(f"{file}: inconsistent sizes d_in={d_in}, num_latents={num_latents}, k={k}")
    return {**cfg, "d_in": d_in, "num_latents": num_latents, "k": k}


def sparsify_weights(src: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """sparsify's tensors in ``src``/sae.safetensors as float32 torch tensors, shapes checked:
    encoder.weight (num_latents, d_in), encoder.bias (num_latents,), W_dec (num_latents, d_in),
    b_dec (d_in,). ArtifactError naming the file when corrupt, incomplete or mis-shaped."""
    import torch

    file = src / SPARSIFY_FILES[1]
    tensors = _read_safetensors(file)
    missing = [key for key in SPARSIFY_KEYS if key not in tensors]
    if missing:
        hint = " (saved without a decoder?)" if missing == ["W_dec"] else ""
        raise ArtifactError(f"{file}: missing tensor {missing[0]}{hint}")
    if "W_skip" in tensors:
        raise ConfigError(f"sae: {src}: the sparsify SAE has a skip connection (W_skip); it does not "
                          f"convert to SAELens")
    n, d = cfg["num_latents"], cfg["d_in"]
    expected = {"encoder.weight": (n, d), "encoder.bias": (n,), "W_dec": (n, d), "b_dec": (d,)}
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise ArtifactError(f"{file}: {key} has shape {tuple(tensors[key].shape)}, cfg.json says {shape}")
    out = {key: tensors[key].to(torch.float32) for key in SPARSIFY_KEYS}
    bad = [key for key, value in out.items() if not torch.isfinite(value).all()]
    if bad:
        raise ArtifactError(f"{file}: {bad[0]} holds non-finite values")
    return out


# --------------------------------------------------------------------------------------------
# local folders


def _load_local(path: Path, device: str) -> Any:
    """Load the SAE in folder ``path`` (any of the three local formats) onto ``device``."""
    kind = sae_folder_format(path)
    if kind == "featgeom":
        from featgeom.sae.artifact import load as load_artifact

        return _finite(load_artifact(path).sae, path).to(device)
    if kind == "sparsify":
        with tempfile.TemporaryDirectory(prefix="featgeom-sparsify-") as tmp:
            converted = convert_sparsify(path, Path(tmp) / "sae")
            return _load_saelens_folder(converted, device, shown=path)
    _verify_conversion_record(path)
    return _load_saelens_folder(path, device, shown=path)


def _load_saelens_folder(path: Path, device: str, shown: Path) -> Any:
    """``SAE.load_from_disk(path)``, with SAELens's errors turned into featgeom errors naming
    ``shown`` (the folder the user gave) or the file at fault."""
    from sae_lens import SAE
    from safetensors import SafetensorError

    cfg = _read_json(path / "cfg.json")
    if not isinstance(cfg, dict) or "d_in" not in cfg or "d_sae" not in cfg:
        raise ArtifactError(f"{shown / 'cfg.json'}: not a SAELens cfg.json (no d_in / d_sae)")
    try:
        sae = SAE.load_from_disk(path, device=device)
    except SafetensorError as exc:
        raise ArtifactError(f"{shown / SAELENS_FILES[1]}: corrupt safetensors file ({exc})") from None
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ArtifactError(f"{shown}: SAELens cannot build an SAE from this folder "
                            f"({type(exc).__name__}: {_first_line(exc)})") from None
    return _finite(sae, shown)


def _verify_conversion_record(path: Path) -> None:
    """If ``path`` is one of our converted folders, check the sha256 of its SAELens files."""
    record_file = path / CONVERSION_FILE
    if not record_file.is_file():
        return
    record = _read_json(record_file)
    for name, digest in (record.get("files") or {}).items():
        if sha256(path / name) != digest:
            raise ArtifactError(f"{path / name}: corrupted or truncated (sha256 differs from {CONVERSION_FILE})")


def _existing_conversion(dst: Path, src: Path, sources: dict[str, str]) -> Path:
    """``dst`` when it is a verified conversion of byte-identical sources; ArtifactError otherwise."""
    record_file = dst / CONVERSION_FILE
    if not record_file.is_file():
        raise ArtifactError(f"{dst}: already exists and is not a featgeom sparsify conversion; "
                            f"refusing to overwrite it")
    record = _read_json(record_file)
    if record.get("source_sha256") != sources:
        raise ArtifactError(f"{dst}: already holds a conversion of other source files than {src}; "
                            f"refusing to overwrite it")
    _verify_conversion_record(dst)
    return dst


def _sparsify_model_name(src: Path) -> str | None:
    """The model named in the training run's config.json next to the hookpoint folder, if any."""
    run_config = src.resolve().parent / "config.json"
    try:
        model = json.loads(run_config.read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return model if isinstance(model, str) else None


def _require_sparsify_folder(src: Path) -> None:
    if not src.exists():
        raise ConfigError(f"src: {src}: no such sparsify SAE folder")
    kind = sae_folder_format(src)
    if kind != "sparsify":
        raise ConfigError(f"src: {src} holds a {kind} SAE, not an EleutherAI sparsify one "
                          f"({' + '.join(SPARSIFY_FILES)}); load it with load_sae directly")


# --------------------------------------------------------------------------------------------
# the hub


def _load_from_hub(release: str, sae_id: str, device: str) -> Any:
    """``SAE.from_pretrained(release, sae_id)``, with every failure one featgeom error."""
    import warnings

    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
    )
    from sae_lens import SAE
    from safetensors import SafetensorError

    repo_id, folder = _hub_location(release, sae_id)
    where = f"SAE {release}:{sae_id} (hub repo {repo_id}, folder {folder})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "loading by repo_id": not an error
            sae = SAE.from_pretrained(release, sae_id, device=device)
    except (EntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as exc:
        if constants.HF_HUB_OFFLINE:
            raise ConfigError(f"sae: {where} is not in the local hub cache ({constants.HF_HUB_CACHE}) "
                              f"and HF_HUB_OFFLINE=1 forbids downloading it; download it once online "
                              f"or pass a local SAE folder") from None
        raise ConfigError(f"sae: {where} could not be downloaded ({type(exc).__name__}: "
                          f"{_first_line(exc)}); set HF_HUB_OFFLINE=1 to read only the local cache, "
                          f"or pass a local SAE folder") from None
    except SafetensorError as exc:
        raise ArtifactError(f"{_cached_file(repo_id, folder)}: corrupt safetensors file in the hub "
                            f"cache for {where} ({exc})") from None
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ArtifactError(f"{where}: SAELens cannot build an SAE from the cached files "
                            f"({type(exc).__name__}: {_first_line(exc)})") from None
    return _finite(sae, Path(f"{release}:{sae_id}"))


def sparsify_hub_folder(location: str) -> Path:
    """The local folder of the sparsify SAE at ``ORG/REPO/FOLDER`` on the hub: fetched into the
    hub cache (``snapshot_download`` of that folder only; read from the cache alone when
    HF_HUB_OFFLINE is set). ConfigError for a malformed location or one not available."""
    from huggingface_hub import constants, snapshot_download

    parts = location.strip("/").split("/")
    if len(parts) < 3 or not all(parts):
        raise ConfigError(f"sae: {SPARSIFY_HUB}{location!r}: expected {SPARSIFY_HUB}ORG/REPO/FOLDER, "
                          f"e.g. {SPARSIFY_HUB}EleutherAI/sae-pythia-70m-32k/layers.3")
    repo_id, folder = "/".join(parts[:2]), "/".join(parts[2:])
    offline = constants.HF_HUB_OFFLINE
    uncached = "is not in the local hub cache and HF_HUB_OFFLINE=1 forbids downloading it"
    try:
        root = snapshot_download(repo_id, allow_patterns=[f"{folder}/*"], local_files_only=offline)
    except Exception as exc:  # huggingface_hub raises many types (offline, not found, HTTP, OS)
        state = uncached if offline else f"could not be downloaded ({type(exc).__name__}: {_first_line(exc)})"
        raise ConfigError(f"sae: sparsify SAE {repo_id}/{folder} {state}") from None
    found = Path(root) / folder
    if not found.is_dir():
        state = uncached if offline else "does not exist in that repo"
        raise ConfigError(f"sae: sparsify SAE {repo_id}/{folder} {state}")
    return found


def _hub_location(release: str, sae_id: str) -> tuple[str, str]:
    """(repo_id, folder) of a release + id; ConfigError with close names for unknown ones.

    A release not in SAELens's directory that holds a '/' is taken as a hub repo id and ``sae_id``
    as the folder in it (SAELens's own rule)."""
    directory = _pretrained_directory()
    if release in directory:
        ids = directory[release].saes_map
        if sae_id not in ids:
            raise ConfigError(f"sae: SAE id {sae_id!r} is not in SAELens release {release!r}"
                              f"{_close_hint(sae_id, ids, 'ids')} ({len(ids)} ids in all)")
        return directory[release].repo_id, ids[sae_id]
    if "/" in release:
        return release, sae_id
    raise ConfigError(f"sae: unknown SAELens release {release!r}{_close_hint(release, directory, 'releases')}"
                      f" (the releases are listed in sae_lens's pretrained_saes.yaml)")


def _pretrained_directory() -> dict[str, Any]:
    """SAELens's pretrained SAE directory, {release: lookup with .repo_id and .saes_map}."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    return get_pretrained_saes_directory()


def _cached_file(repo_id: str, folder: str) -> str:
    """Path of ``folder``/sae_weights.safetensors in the hub cache (or its repo path if unknown)."""
    from huggingface_hub import try_to_load_from_cache

    name = f"{folder}/{SAELENS_FILES[1]}"
    found = try_to_load_from_cache(repo_id, name)
    return found if isinstance(found, str) else f"{repo_id}/{name}"


# --------------------------------------------------------------------------------------------
# small helpers


def _close_hint(word: str, names: Any, what: str) -> str:
    close = difflib.get_close_matches(word, list(names), n=5, cutoff=0.5)
    return f"; close {what}: {', '.join(close)}" if close else ""


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{file}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{file}: unreadable or not JSON ({exc})") from None


def _read_safetensors(file: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"{file}: corrupt safetensors file ({exc})") from None


def _finite(sae: Any, where: Path) -> Any:
    """``sae`` itself; ArtifactError when a weight holds NaN or inf (a damaged file)."""
    import torch

    for name, param in sae.named_parameters():
        if not torch.isfinite(param).all():
            raise ArtifactError(f"{where}: SAE weight {name} holds non-finite values")
    return sae


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
