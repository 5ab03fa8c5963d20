"""Compact a ``serac train`` artifact small enough to ship inside the package (``serac compact``).

A trained artifact holds a fully fine-tuned scope encoder (~90 MB) and a rank-16 LoRA adapter
(~20 MB). Both are differences from models that every install already has (the embedded MiniLM and
SmolLM2), and both differences are close to low rank, so the compact form stores only:

- ``scope_delta/``: the encoder's change from its base model, each matrix as a truncated SVD
  (``U S^1/2``, ``S^1/2 V^T``) and each vector in full, in fp16 (:mod:`serac.deltas` rebuilds the
  encoder once into ``$SERAC_HOME/models``);
- ``counterfactual_adapter/``: the LoRA adapter re-factored to a lower rank by the same SVD of each
  module's ``B A`` product (scaling folded in), in fp16: an ordinary peft adapter;
- ``cross_encoder_delta/`` (when the artifact has a cross-encoder scope verifier): its change from the
  embedded MiniLM, as for the scope encoder; its weights carry the architecture's prefix (``bert.``)
  and its new classification head, which the base lacks, is stored whole.

What truncation costs is measured, not assumed: :func:`agreement` compares the compact artifact
with the full one on real queries (routing decisions and greedy answers).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import torch

from serac.config import SeracConfig
from serac.deltas import DELTA_CONFIG, DELTA_WEIGHTS
from serac.editor import ADAPTER_DIR, CONFIG_FILE, SCOPE_DIR, load_artifact_config
from serac.errors import ConfigError
from serac.models import EMBEDDED_PREFIX, resolve_model

SCOPE_DELTA_DIR = "scope_delta"
CROSS_ENCODER_DELTA_DIR = "cross_encoder_delta"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class CompactReport:
    scope_rank: int
    adapter_rank: int
    scope_bytes: int
    adapter_bytes: int
    scope_energy_kept: float  # share of the squared Frobenius norm of the deltas the truncation keeps
    adapter_energy_kept: float
    cross_encoder_rank: int | None = None  # None: the artifact has no cross-encoder
    cross_encoder_bytes: int = 0
    cross_encoder_energy_kept: float | None = None  # of its change from the base (the new head is kept whole)

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _low_rank(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """``delta ~= up @ down`` with ``rank`` columns; also the kept and total squared norms."""
    return _truncate(torch.linalg.svd(delta.double(), full_matrices=False), rank)


def _truncate(svd: tuple[torch.Tensor, torch.Tensor, torch.Tensor], rank: int
              ) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    u, s, vh = svd
    r = min(rank, s.numel())
    root = s[:r].sqrt()
    up = (u[:, :r] * root).float().contiguous()
    down = (root[:, None] * vh[:r]).float().contiguous()
    return up, down, float((s[:r] ** 2).sum()), float((s**2).sum())


def _spread_ranks(spectra: dict[str, tuple[torch.Tensor, int]], rank: int) -> dict[str, int]:
    """Per-matrix ranks that spend the bytes of ``rank`` for every matrix where they keep the most:
    singular values taken in order of squared value per stored number (``rows + columns``), so a
    matrix whose change is nearly low rank (or tiny) gives its bytes to one whose change is not."""
    names = list(spectra)
    gain = torch.cat([s**2 / width for s, width in spectra.values()])
    cost = torch.cat([torch.full((s.numel(),), float(width), dtype=torch.float64) for s, width in spectra.values()])
    owner = torch.cat([torch.full((s.numel(),), i) for i, (s, _) in enumerate(spectra.values())])
    order = torch.argsort(gain, descending=True, stable=True)
    taken = order[torch.cumsum(cost[order], 0) <= rank * sum(width for _, width in spectra.values())]
    counts = torch.bincount(owner[taken], minlength=len(names))
    return {name: int(count) for name, count in zip(names, counts)}


def _encode_deltas(changes: Iterable[tuple[str, torch.Tensor]], rank: int, spread: bool = False
                   ) -> tuple[dict[str, torch.Tensor], float]:
    """Each nonzero change as fp16 ``NAME::up`` / ``NAME::down`` (a matrix whose rank-``rank`` factors
    are smaller than it) or ``NAME::full``; also the share of the changes' squared norm kept.
    ``spread``: the factored matrices share the bytes of ``rank`` each (:func:`_spread_ranks`)."""
    changes = [(name, delta) for name, delta in changes if torch.any(delta)]
    svds = {name: torch.linalg.svd(delta.double(), full_matrices=False) for name, delta in changes
            if delta.dim() == 2 and rank * sum(delta.shape) < delta.numel()}
    ranks = (_spread_ranks({name: (svd[1], svd[0].shape[0] + svd[2].shape[1]) for name, svd in svds.items()},
                           rank) if spread else dict.fromkeys(svds, rank))
    tensors: dict[str, torch.Tensor] = {}
    kept = total = 0.0
    for name, delta in changes:
        if name in svds:
            up, down, k, t = _truncate(svds[name], ranks[name])
            if ranks[name]:
                tensors[f"{name}::up"], tensors[f"{name}::down"] = up.half(), down.half()
            kept, total = kept + k, total + t
        else:
            tensors[f"{name}::full"] = delta.half()
            norm = float((delta.double() ** 2).sum())
            kept, total = kept + norm, total + norm
    return tensors, kept / total if total else 1.0


def _sentence_weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    file = directory / "model.safetensors"
    if not file.exists():
        raise ConfigError(f"{directory} has no model.safetensors; compact a scope encoder saved by `serac train`")
    return load_file(str(file))


def compact_scope(trained: Path, base_spec: str, target: Path, rank: int) -> tuple[int, float]:
    """Write ``target`` (a delta directory) and return its size in bytes and the energy kept."""
    from safetensors.torch import save_file

    base_dir = Path(resolve_model(base_spec))
    base = _sentence_weights(base_dir)
    tuned = _sentence_weights(trained)
    missing = sorted(set(tuned) - set(base))
    if missing:
        raise ConfigError(f"the trained scope encoder has weights its base {base_spec!r} lacks ({missing[:3]}...); "
                          "compact only an encoder fine-tuned from that base")
    tensors, kept = _encode_deltas(((name, value.float() - base[name].float()) for name, value in tuned.items()), rank)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    save_file(tensors, str(target / DELTA_WEIGHTS))
    for extra in trained.iterdir():  # sentence-transformers module files: small, copied as is
        if extra.name == "model.safetensors" or (extra.is_file() and (base_dir / extra.name).is_file()
                                                 and (base_dir / extra.name).read_bytes() == extra.read_bytes()):
            continue
        if extra.name == "tokenizer.json" and (base_dir / extra.name).is_file():
            continue  # the base's tokenizer (the vocabulary is frozen); 0.7 MB we need not ship
        (shutil.copytree if extra.is_dir() else shutil.copy2)(extra, target / extra.name)
    (target / DELTA_CONFIG).write_text(json.dumps({"base": base_spec, "rank": rank}, indent=2) + "\n")
    return _size(target), kept


def _head_prefix(model_dir: Path) -> str:
    """The name prefix of the backbone inside a sequence-classification model (``bert.``), from the
    class transformers (and so CrossEncoder) loads for its config."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    config = AutoConfig.from_pretrained(str(model_dir))
    try:
        model_class = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)]
    except KeyError:
        raise ConfigError(f"{model_dir} holds a {config.model_type!r} model, which transformers has no sequence "
                          "classifier for; compact only a CrossEncoder saved by `serac train --cross-encoder`") from None
    return f"{model_class.base_model_prefix}." if model_class.base_model_prefix else ""


def _same_tokenizer(file: Path, base_file: Path) -> bool:
    """Whether two ``tokenizer.json`` files tokenize alike: equal but for the padding and truncation
    defaults, which the tokenizer sets on every call."""
    if not base_file.is_file():
        return False
    mine, theirs = json.loads(file.read_text()), json.loads(base_file.read_text())
    for settings in (mine, theirs):
        settings.pop("padding", None)
        settings.pop("truncation", None)
    return bool(mine == theirs)


CROSS_ENCODER_FILES = ("config.json", "config_sentence_transformers.json", "tokenizer_config.json",
                       "sentence_bert_config.json", "modules.json", "special_tokens_map.json", "vocab.txt")


def compact_cross_encoder(trained: Path, base_spec: str, target: Path, rank: int) -> tuple[int, float]:
    """Write ``target``, the delta directory of a CrossEncoder fine-tuned from the bi-encoder
    ``base_spec`` with a new head, and return its size in bytes and the energy of the change kept.
    Its weights are the base's under the classifier's backbone prefix (recorded as ``prefix``); the
    head, which the base lacks, is stored whole (``NAME::new``); base weights the classifier does not
    have (``drop``) are left out. Only the files named in ``from_base`` are taken from the base
    directory when it is rebuilt: its bi-encoder modules (pooling, normalisation) must not survive."""
    from safetensors.torch import save_file

    base_dir = Path(resolve_model(base_spec))
    base = _sentence_weights(base_dir)
    tuned = _sentence_weights(trained)
    prefix = _head_prefix(trained)
    changes: list[tuple[str, torch.Tensor]] = []
    new: dict[str, torch.Tensor] = {}
    for name, value in tuned.items():
        inner = name[len(prefix):] if name.startswith(prefix) else None
        if inner is not None and inner in base and base[inner].shape == value.shape:
            changes.append((inner, value.float() - base[inner].float()))
        else:
            new[f"{name}::new"] = value.contiguous()
    if not changes:
        raise ConfigError(f"the cross-encoder in {trained} shares no weights with its base {base_spec!r}; compact "
                          "only a cross-encoder fine-tuned from that base")
    tensors, kept = _encode_deltas(changes, rank, spread=True)
    tensors.update(new)
    shared = {name for name, _ in changes}
    spec: dict[str, object] = {"base": base_spec, "rank": rank, "prefix": prefix,
                               "drop": sorted(set(base) - shared), "from_base": []}
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    save_file(tensors, str(target / DELTA_WEIGHTS))
    for name in CROSS_ENCODER_FILES:
        if (trained / name).is_file():
            shutil.copy2(trained / name, target / name)
    tokenizer = trained / "tokenizer.json"
    if tokenizer.is_file():
        if _same_tokenizer(tokenizer, base_dir / tokenizer.name):
            spec["from_base"] = [tokenizer.name]  # the base's vocabulary: 0.7 MB we need not ship
        else:
            shutil.copy2(tokenizer, target / tokenizer.name)
    (target / DELTA_CONFIG).write_text(json.dumps(spec, indent=2) + "\n")
    return _size(target), kept


def compact_adapter(adapter: Path, target: Path, rank: int) -> tuple[int, float]:
    """Re-factor a peft LoRA adapter to ``rank`` (scaling folded in, ``lora_alpha = rank``), fp16."""
    from safetensors.torch import load_file, save_file

    config = json.loads((adapter / ADAPTER_CONFIG).read_text())
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("rank_pattern") or config.get(
            "alpha_pattern"):
        raise ConfigError(f"{adapter} is not a plain LoRA adapter (one rank and alpha for every module); "
                          "compact only adapters written by `serac train --counterfactual-method lora`")
    scaling = float(config["lora_alpha"]) / float(config["r"])
    weights = load_file(str(adapter / ADAPTER_WEIGHTS))
    out: dict[str, torch.Tensor] = {}
    kept = total = 0.0
    for name, a in weights.items():
        if ".lora_A." not in name:
            if ".lora_B." not in name:
                out[name] = a.half()  # e.g. modules_to_save: kept whole
            continue
        b = weights[name.replace(".lora_A.", ".lora_B.")]
        # B A = (Qb Rb)(Ra^T Qa^T): the SVD of the small Rb Ra^T gives the product's, without forming it.
        qb, rb = torch.linalg.qr(b.double())
        qa, ra = torch.linalg.qr(a.double().T)
        up, down, k, t = _low_rank(scaling * rb @ ra.T, rank)
        out[name.replace(".lora_A.", ".lora_B.")] = (qb.float() @ up).half().contiguous()
        out[name] = (down @ qa.float().T).half().contiguous()
        kept, total = kept + k, total + t
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    save_file(out, str(target / ADAPTER_WEIGHTS))
    config.update(r=rank, lora_alpha=rank, lora_dropout=0.0, base_model_name_or_path=None)
    (target / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return _size(target), kept / total if total else 1.0


def compact_artifact(source: Path, target: Path, scope_rank: int = 8, adapter_rank: int = 4,
                     portable: bool = True, cross_encoder_rank: int = 8) -> CompactReport:
    """Write the compact form of the artifact in ``source`` into ``target`` (replaced if present).
    ``portable``: refuse artifacts whose models are local paths (a shipped artifact must name models
    every install can load: embedded: presets or Hub ids)."""
    source, target = Path(source), Path(target)
    config = load_artifact_config(source)
    train_config = source / "train_config.json"
    trained = json.loads(train_config.read_text()) if train_config.exists() else {}
    scope_base = trained.get("scope", {}).get("encoder")
    if not scope_base or not (source / SCOPE_DIR).is_dir() or not (source / ADAPTER_DIR).is_dir():
        raise ConfigError(f"{source} is not a complete `serac train` LoRA artifact (it needs {SCOPE_DIR}/, "
                          f"{ADAPTER_DIR}/ and train_config.json); train one with `serac train --output DIR`")
    if portable and _local(scope_base):
        raise ConfigError(f"the scope encoder was trained from the local path {scope_base!r}; the compact form stores "
                          "differences from its base, so train from an embedded: encoder or a Hub id (or pass "
                          "portable=False to compact for this machine only)")
    cross_encoder = _artifact_cross_encoder(source, config.scope.cross_encoder)
    cross_encoder_base = trained.get("cross_encoder", {}).get("model")
    if cross_encoder is not None:
        if not cross_encoder_base:
            raise ConfigError(f"{train_config} does not name the model the cross-encoder was trained from "
                              "(cross_encoder.model); the compact form stores differences from it")
        if portable and _local(cross_encoder_base):
            raise ConfigError(f"the cross-encoder was trained from the local path {cross_encoder_base!r}; train it from "
                              "an embedded: encoder or a Hub id (or pass portable=False to compact for this machine "
                              "only)")
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    scope_bytes, scope_kept = compact_scope(source / SCOPE_DIR, scope_base, staging / SCOPE_DELTA_DIR, scope_rank)
    adapter_bytes, adapter_kept = compact_adapter(source / ADAPTER_DIR, staging / ADAPTER_DIR, adapter_rank)
    compact = SeracConfig.from_dict(config.to_dict())
    compact.scope.encoder = SCOPE_DELTA_DIR
    compact.counterfactual.adapter = ADAPTER_DIR
    for part in (compact.base, compact.counterfactual):
        if portable and _local(part.model):
            raise ConfigError(f"the artifact names a local model {part.model}; a shipped artifact may name only "
                              "embedded: models or Hub ids")
    report = CompactReport(scope_rank, adapter_rank, scope_bytes, adapter_bytes, scope_kept, adapter_kept)
    if cross_encoder is not None:
        report.cross_encoder_bytes, report.cross_encoder_energy_kept = compact_cross_encoder(
            cross_encoder, cross_encoder_base, staging / CROSS_ENCODER_DELTA_DIR, cross_encoder_rank)
        report.cross_encoder_rank = cross_encoder_rank
        compact.scope.cross_encoder = CROSS_ENCODER_DELTA_DIR  # its threshold and other settings are kept
    compact.save(staging / CONFIG_FILE)
    (staging / "compact_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return report


def _artifact_cross_encoder(source: Path, spec: str | None) -> Path | None:
    """The artifact's own cross-encoder directory, or None when it has none. One named outside the
    artifact (a Hub id, another directory) is refused: the compact form must carry it."""
    if not spec:
        return None
    path = Path(spec)
    if not path.is_dir() or not path.resolve().is_relative_to(source.resolve()):
        raise ConfigError(f"the artifact's scope.cross_encoder {spec!r} is not a directory inside it; compact "
                          "artifacts whose cross-encoder `serac train --cross-encoder` saved beside them, or "
                          "clear scope.cross_encoder first")
    return path


def _local(spec: str) -> bool:
    return not spec.startswith(EMBEDDED_PREFIX) and Path(spec).exists()


def _size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
