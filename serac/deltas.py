"""Models stored as a difference from a base model: rebuilt once, then loaded like any other.

A *delta directory* holds ``serac_delta.json`` (``{"base": spec, "rank": r}``), ``delta.safetensors``
(per weight either ``NAME::full`` or the low-rank pair ``NAME::up`` / ``NAME::down``, see
:mod:`serac.train.compact`) and the model's small non-weight files. A model that wraps the base in
a new head (a cross-encoder) also records ``prefix`` (the base's weights are ``PREFIX + NAME`` in
it), ``drop`` (base weights it lacks), ``from_base`` (the only base files it takes; without the key,
all of them) and stores its head whole (``NAME::new``). :func:`materialize` adds the
delta to the base's weights and writes a complete model directory (under ``$SERAC_HOME/models``),
named by the delta's content hash, so a changed delta never reuses a stale build. Loaders never see
the difference: :func:`serac.models.resolve_model` maps a delta directory to its built model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from serac.errors import ModelNotAvailableError

logger = logging.getLogger(__name__)

DELTA_CONFIG = "serac_delta.json"
DELTA_WEIGHTS = "delta.safetensors"


def is_delta_dir(path: str | Path) -> bool:
    return (Path(path) / DELTA_CONFIG).is_file()


def _digest(directory: Path) -> str:
    sha = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        sha.update(str(file.relative_to(directory)).encode())
        sha.update(file.read_bytes())
    return sha.hexdigest()[:16]


def materialize(directory: str | Path, cache: Path, resolve: Callable[[str], str]) -> Path:
    """The complete model a delta directory describes, built on first use (atomically) under
    ``cache`` and reused after; ``resolve`` turns the base's spec into a local directory."""
    directory = Path(directory)
    try:
        spec = json.loads((directory / DELTA_CONFIG).read_text())
        base_spec = spec["base"]
        prefix, drop, from_base = str(spec.get("prefix", "")), set(spec.get("drop", [])), spec.get("from_base")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotAvailableError(f"{directory} is not a readable delta directory ({exc}); restore it from "
                                     "the package (`pip install --force-reinstall serac-edit`) or re-run `serac compact`"
                                     ) from None
    target = cache / f"delta-{_digest(directory)}"
    if (target / "model.safetensors").exists():
        return target
    base = Path(resolve(base_spec))
    logger.info("building %s from %s plus the delta in %s (once)", target, base_spec, directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".delta-", dir=target.parent))
    try:
        if from_base is None:
            shutil.copytree(base, staging, dirs_exist_ok=True)
        for name in from_base or ():
            shutil.copy2(base / name, staging / name)
        for extra in directory.iterdir():
            if extra.name in (DELTA_CONFIG, DELTA_WEIGHTS):
                continue
            (shutil.copytree if extra.is_dir() else shutil.copy2)(extra, staging / extra.name,
                                                                 **({"dirs_exist_ok": True} if extra.is_dir() else {}))
        _apply(base / "model.safetensors", directory / DELTA_WEIGHTS, staging / "model.safetensors", prefix, drop)
        try:
            staging.rename(target)
        except OSError:  # another process built it first
            if not (target / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _apply(base_file: Path, delta_file: Path, out_file: Path, prefix: str = "", drop: set[str] | None = None) -> None:
    from safetensors.torch import load_file, save_file

    weights = {prefix + name: value for name, value in load_file(str(base_file)).items() if name not in (drop or ())}
    delta = load_file(str(delta_file))
    for key, value in delta.items():
        stem, kind = key.rsplit("::", 1)
        if kind == "new":  # a weight the base lacks (a new head): stored whole
            weights[stem] = value
            continue
        name = prefix + stem
        if name not in weights:
            raise ModelNotAvailableError(f"the delta in {delta_file.parent} changes {name!r}, which its base model "
                                         "lacks; the delta was made from another base model")
        if kind == "full":
            change = value.float()
        elif kind == "up":
            change = value.float() @ delta[f"{stem}::down"].float()
        else:
            continue
        weights[name] = (weights[name].float() + change).to(weights[name].dtype)
    save_file(weights, str(out_file), metadata={"format": "pt"})
