"""GRACE (Hartvigsen et al., 2023, "Aging with GRACE: lifelong model editing with discrete key-value
adaptors"), written here from the paper's description.

A codebook sits at the output of one decoder block of a causal language model and the model's weights
never change. Each entry holds a *key* (the block's hidden state at the last token of an edit's input),
a *value* (a vector optimised so that the model, with that hidden state replaced by it, produces the
edit's target) and a *deferral radius*. At inference, the block's hidden state at the last token of the
input is the query: if it lies within the radius of its nearest key (Euclidean distance), the hidden
state there is replaced by that key's value; otherwise the block's output is left untouched, so the
model's logits on unrelated inputs are bit-identical to the unedited model's.

Codebook maintenance (the paper's Algorithm 1), for a new edit whose key is at distance ``d`` from the
nearest existing key ``i`` and the ranges overlap (``d <= radius_i + epsilon``):

- same target: ``radius_i`` grows to ``d`` (the existing value now also serves this input);
- different target: both radii become ``d / 2`` so the two entries no longer overlap, and the new
  entry's value is optimised;

otherwise a new entry with radius ``epsilon`` is added. Removing an edit removes it from its entry;
an entry with no edits left is removed.

Cost: the value is optimised with a few Adam steps on the edit's target tokens, re-running only the
blocks after the chosen one (the earlier ones are replayed from one forward pass): see
:class:`GraceConfig` and ``serac/eval/README.md`` for the settings and the measured time per edit.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from serac.base import HFCausalLM
from serac.config import INTEGER, POSITIVE_INT, POSITIVE_NUMBER, Config, option, optional
from serac.errors import ConfigError

EditPair = tuple[str, str]  # (input, target)


# The deferral radius is a per-dataset hyper-parameter (as in the paper). The default (GraceConfig.epsilon,
# 80) was chosen on the zsRE training file; on the CounterFact training file (scripts/grace_calibration.py
# --task counterfact; serac/eval/README.md, section GRACE) a CounterFact statement's out-of-scope
# neighbour (same relation, another subject) lies about as close to some key as a rephrasing to its own:
# at 80, 16% of those neighbours are served (vs 0% of zsRE's NQ questions); 70 is the largest radius
# tried that serves under 10% of them. The bench's counterfact part uses it (serac/eval/bench.py).
COUNTERFACT_EPSILON = 70.0

# The default block: 4/5 of the way up (the paper edits a late block; on SmolLM2 block 24 of 30 separated
# rephrasings from other edits best among the blocks measured, see serac/eval/README.md).
DEPTH_NUMERATOR, DEPTH_DENOMINATOR = 4, 5


@dataclass
class GraceConfig(Config):
    """GRACE's settings (defaults: the benchmark's, chosen on the zsRE training file; see
    ``serac/eval/README.md``, section GRACE)."""

    section = "grace"

    layer: int | None = option(None, "Decoder block whose output holds the codebook; negative counts from the "
                                     "last; None: the block at 4/5 of the depth (block 24 of SmolLM2-135M's 30).",
                               check=optional(INTEGER))
    epsilon: float = option(80.0, "Initial deferral radius of a new key: Euclidean distance in the block's "
                                 "hidden-state space.", check=POSITIVE_NUMBER)
    steps: int = option(30, "Most Adam steps optimising a new key's value (stops once the target's "
                            "tokens are all the argmax).", check=POSITIVE_INT)
    lr: float = option(6.0, "Adam learning rate of the value vector.", check=POSITIVE_NUMBER)


def decoder_blocks(model: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """The decoder (``model.get_decoder()``) and its list of blocks: the ``ModuleList`` child with
    ``config.num_hidden_layers`` entries (found by type and size, not by attribute name)."""
    config = getattr(model, "config", None)
    get_decoder = getattr(model, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else None
    count = getattr(config, "num_hidden_layers", None)
    if decoder is not None and isinstance(count, int) and not getattr(config, "is_encoder_decoder", False):
        for child in decoder.children():
            if isinstance(child, nn.ModuleList) and len(child) == count:
                return decoder, child
    raise ConfigError(
        f"GRACE needs a decoder-only model whose get_decoder() holds its blocks in a ModuleList of "
        f"config.num_hidden_layers entries (Llama-style, e.g. SmolLM2); got {type(model).__name__}"
    )


class _Replay(nn.Module):
    """Stands in for a block while a value is optimised: returns ``source(input)`` (the input itself
    for the blocks before the chosen one, the replayed hidden states for the chosen one), so only the
    blocks after it are computed."""

    def __init__(self, source: Callable[[torch.Tensor], torch.Tensor], as_tuple: bool) -> None:
        super().__init__()
        self.source = source
        self.as_tuple = as_tuple

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        out = self.source(hidden_states)
        return (out,) if self.as_tuple else out


class _Stop(Exception):
    """Raised by the capture hook to end a forward pass once the chosen block has run."""


@dataclass
class Entry:
    """One codebook entry; ``edits`` are the inputs it serves (the first one made it)."""

    key: torch.Tensor  # (hidden,)
    value: torch.Tensor  # (hidden,)
    radius: float
    target: str
    edits: list[str] = field(default_factory=list)


class Codebook:
    """GRACE's keys, values and radii, with the paper's add / expand / split rules."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon
        self.entries: list[Entry] = []
        self._keys: torch.Tensor | None = None  # stacked keys, rebuilt after a change

    def __len__(self) -> int:
        return len(self.entries)

    def keys(self) -> torch.Tensor:
        if self._keys is None:
            self._keys = torch.stack([e.key for e in self.entries])
        return self._keys

    def nearest(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(index, distance) of each query's nearest key; (-1, inf) with an empty codebook. One
        matrix product over the keys: at 1,000 keys of 576 dims far below a block's cost."""
        if not self.entries:
            return (torch.full((len(queries),), -1, dtype=torch.long),
                    torch.full((len(queries),), float("inf")))
        distances = torch.cdist(queries.float(), self.keys())
        best, index = distances.min(dim=1)
        return index, best

    def lookup(self, queries: torch.Tensor) -> torch.Tensor:
        """Per query, the index of the entry that serves it (nearest key within its radius), or -1."""
        index, distance = self.nearest(queries)
        if not self.entries:
            return index
        radii = torch.tensor([e.radius for e in self.entries])
        return torch.where(distance <= radii[index], index, torch.full_like(index, -1))

    def place(self, key: torch.Tensor, target: str, edit: str) -> float | None:
        """Apply the maintenance rules for a new edit. Returns None when an existing entry now serves
        it (same target: radius expanded), else the radius of the new entry to add (``epsilon``, or
        half the distance to a conflicting key, whose radius is split to the same)."""
        index, distance = self.nearest(key[None])
        i, d = int(index[0]), float(distance[0])
        if i < 0 or d > self.entries[i].radius + self.epsilon:
            return self.epsilon
        entry = self.entries[i]
        if entry.target == target:
            entry.radius = max(entry.radius, d)
            entry.edits.append(edit)
            return None
        if d <= 1e-3 * self.epsilon:
            # The same input with a new target: halving a zero distance would leave neither entry a
            # radius, so the new edit takes the old entry's place (newest wins).
            self.entries.pop(i)
            self._keys = None
            return entry.radius
        entry.radius = d / 2
        return d / 2

    def add(self, key: torch.Tensor, value: torch.Tensor, radius: float, target: str, edit: str) -> None:
        self.entries.append(Entry(key.detach().float(), value.detach().float(), radius, target, [edit]))
        self._keys = None

    def remove(self, edit: str) -> bool:
        """Forget ``edit``; an entry left serving no edit is removed. False if no entry serves it."""
        for i, entry in enumerate(self.entries):
            if edit in entry.edits:
                entry.edits.remove(edit)
                if not entry.edits:
                    self.entries.pop(i)
                    self._keys = None
                return True
        return False


class GraceAdaptor:
    """A :class:`Codebook` attached to block ``config.layer`` of a causal LM by a forward hook.

    The hook is inert unless armed by :meth:`serve_next`: it then serves the next forward pass (the
    prompt pass of a ``generate`` call, whose cached decoding steps follow unserved, or one teacher-
    forced pass) at the given positions, default each row's last token. The model is shared, not
    copied: anyone else's forward passes are untouched."""

    def __init__(self, model: nn.Module, config: GraceConfig | None = None) -> None:
        self.model = model
        self.config = config or GraceConfig()
        self.decoder, self.blocks = decoder_blocks(model)
        n = len(self.blocks)
        layer = self.config.layer if self.config.layer is not None else DEPTH_NUMERATOR * n // DEPTH_DENOMINATOR
        if not -n <= layer < n:
            raise ConfigError(f"grace.layer is {layer}; this model has {n} decoder blocks (valid: {-n} to {n - 1}, "
                              "or None for the block at 4/5 of the depth)")
        self.index = layer % n
        self.block = self.blocks[self.index]
        self.codebook = Codebook(self.config.epsilon)
        self._armed: torch.Tensor | int | None = None
        self._captured: torch.Tensor | None = None
        self._stop_after_capture = False
        self._as_tuple = False
        self.last_served: list[int] = []  # per row of the last served pass: entry index, or -1
        self.last_steps = 0  # optimisation steps of the last new value
        self._handle = self.block.register_forward_hook(self._hook)

    def close(self) -> None:
        """Detach the hook from the model."""
        self._handle.remove()

    # -- the hook ----------------------------------------------------------------------------------
    def _hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        self._as_tuple = isinstance(output, tuple)
        hidden = output[0] if self._as_tuple else output
        if self._stop_after_capture:
            self._captured = hidden.detach()
            raise _Stop
        if self._armed is None:
            return None
        positions, self._armed = self._armed, None  # one pass only
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        if isinstance(positions, int):
            positions = torch.full_like(rows, positions % hidden.shape[1])
        positions = positions.to(hidden.device)
        served = self.codebook.lookup(hidden[rows, positions].detach().float().cpu())
        self.last_served = served.tolist()
        hit = served >= 0
        if not bool(hit.any()):
            return None
        hidden = hidden.clone()
        values = torch.stack([self.codebook.entries[i].value for i in served[hit].tolist()])
        hidden[rows[hit.to(hidden.device)], positions[hit.to(hidden.device)]] = values.to(hidden)
        return (hidden, *output[1:]) if self._as_tuple else hidden

    @contextlib.contextmanager
    def serve_next(self, positions: torch.Tensor | int = -1) -> Iterator[None]:
        """Serve the next forward pass inside the block at ``positions`` (one index per row, or one
        for all rows; -1: the last token); disarmed on exit whether or not a pass ran."""
        self._armed = positions
        try:
            yield
        finally:
            self._armed = None

    # -- queries and keys ----------------------------------------------------------------------------
    def _block_output(self, input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """The chosen block's output for ``input_ids`` (batch, tokens); the blocks after it are not run."""
        self._stop_after_capture, self._captured = True, None
        try:
            with torch.no_grad():
                self.decoder(input_ids=input_ids.to(self.device), **kwargs)
        except _Stop:
            pass
        finally:
            self._stop_after_capture = False
        captured, self._captured = self._captured, None
        if captured is None:
            raise RuntimeError("the GRACE block did not run in the forward pass")
        return captured

    def query(self, prompt_ids: Sequence[int]) -> torch.Tensor:
        """The key/query of one prompt: the block's hidden state at its last token (float32, CPU)."""
        return self._block_output(torch.tensor([list(prompt_ids)]), use_cache=False)[0, -1].float().cpu()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- editing ------------------------------------------------------------------------------------
    def edit(self, prompt_ids: Sequence[int], target_ids: Sequence[int], target: str, edit: str) -> None:
        """Add one edit: ``target_ids`` (with the end-of-sequence token, so the answer stops) should
        follow ``prompt_ids``; ``target`` is the label compared for expand/split, ``edit`` the name
        :meth:`remove` takes."""
        if not target_ids:
            raise ConfigError(f"GRACE edit {edit!r} has an empty target")
        if len(prompt_ids) < 2:
            raise ConfigError(f"GRACE edit {edit!r}: the prompt needs at least two tokens")
        self.last_steps = 0
        ids = torch.tensor([list(prompt_ids) + list(target_ids)], device=self.device)
        at = len(prompt_ids) - 1  # the position served; the logits from there on predict the target
        with torch.no_grad():  # the prompt before its last token, run once into a key/value cache
            cache = self.decoder(input_ids=ids[:, :at], use_cache=True).past_key_values
        hidden = self._block_output(ids[:, at:], **{self._cache_kwarg: copy.deepcopy(cache), "use_cache": True})
        key = hidden[0, 0].float().cpu()  # equals query(prompt_ids) up to float rounding
        radius = self.codebook.place(key, target, edit)
        if radius is not None:
            self.codebook.add(key, self._optimise(ids[:, at:], hidden.clone(), cache), radius, target, edit)

    def remove(self, edit: str) -> bool:
        return self.codebook.remove(edit)

    def clear(self) -> None:
        self.codebook = Codebook(self.config.epsilon)

    def _optimise(self, suffix: torch.Tensor, hidden: torch.Tensor, cache: Any) -> torch.Tensor:
        """A value that makes the model produce the rest of ``suffix`` (the prompt's last token, then
        the target) when the chosen block's output at its first token is replaced by it. ``hidden``:
        the block's output on ``suffix``, replayed each step; ``cache``: the earlier tokens' keys and
        values. Starts from the current hidden state; Adam on the cross-entropy of the target tokens;
        stops once all are the argmax. Each step runs only the blocks after the chosen one, on the
        suffix alone (a handful of tokens), and the weights get no gradient."""
        gold = suffix[0, 1:]
        value = hidden[0, 0].detach().float().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([value], lr=self.config.lr)
        head = self.model.get_output_embeddings()
        with self._replaying(lambda: torch.cat([value.to(hidden)[None, None], hidden[:, 1:]], dim=1)), \
                torch.enable_grad():
            while True:
                states = self.decoder(input_ids=suffix, use_cache=True,
                                      **{self._cache_kwarg: copy.deepcopy(cache)}).last_hidden_state
                logits = head(states[0, :-1]).float()  # (target tokens, vocabulary)
                if bool((logits.argmax(-1) == gold).all()) or self.last_steps == self.config.steps:
                    break
                loss = nn.functional.cross_entropy(logits, gold)
                (value.grad,) = torch.autograd.grad(loss, [value])
                optimizer.step()
                self.last_steps += 1
        return value.detach()

    @property
    def _cache_kwarg(self) -> str:
        """The decoder's name for a key/value cache argument (renamed across transformers versions)."""
        names = inspect.signature(self.decoder.forward).parameters
        return "cache" if "cache" in names else "past_key_values"

    @contextlib.contextmanager
    def _replaying(self, output: Callable[[], torch.Tensor]) -> Iterator[None]:
        """Inside the block, the decoder's blocks before the chosen one pass their input through and
        the chosen one returns ``output()``, so a forward pass computes only the blocks after it."""
        original = list(self.blocks)
        for i in range(self.index):
            self.blocks[i] = _Replay(lambda h: h, self._as_tuple)
        self.blocks[self.index] = _Replay(lambda h: output(), self._as_tuple)
        try:
            yield
        finally:
            for i, block in enumerate(original[: self.index + 1]):
                self.blocks[i] = block


# -- the evaluation method ---------------------------------------------------------------------------
class GraceMethod:
    """GRACE as an :class:`~serac.eval.methods.EditingMethod` on the shared base model.

    ``models`` is the run's :class:`~serac.eval.methods.EvalModels`. Each prompt's query (the block's
    hidden state at its last token, one prompt per pass) is computed once and memoised; prompts no key serves are answered by the shared base model (the
    adaptor leaves them bit-identical), those a key serves by the base model with the adaptor armed."""

    name = "grace"

    def __init__(self, models: Any, config: GraceConfig | None = None) -> None:
        base = models.base.lm
        if not isinstance(base, HFCausalLM):
            raise ConfigError("the grace baseline supports causal language models only")
        self.models = models
        self.config = config or GraceConfig()
        self.adaptor = GraceAdaptor(base.model, self.config)
        adapter = HFCausalLM(base.model, base.tokenizer, chat_template=base.use_chat_template,
                             system_prompt=base.system_prompt, max_new_tokens=base.max_new_tokens, batch_size=1)
        self.lm = models.cached(adapter, "grace")
        self._queries: dict[str, torch.Tensor] = {}
        self.last_routes: list[bool] = []
        self.edit_steps: list[int] = []  # optimisation steps per new value, for the report

    def reset(self) -> None:
        self.adaptor.clear()
        self.lm.clear()

    def close(self) -> None:
        """Detach the codebook's hook from the shared base model (a method built for one bench part)."""
        self.adaptor.close()

    def _ids(self, text: str) -> list[int]:
        lm = self.lm.lm
        return lm.tokenizer(text, add_special_tokens=not lm.use_chat_template)["input_ids"]

    def _query(self, text: str) -> torch.Tensor:
        """The memoised query of a formatted prompt (not memoised while the memos are off: timing)."""
        if not self.lm.enabled:
            return self.adaptor.query(self._ids(text))
        if text not in self._queries:
            self._queries[text] = self.adaptor.query(self._ids(text))
        return self._queries[text]

    def apply(self, edits: Sequence[EditPair]) -> None:
        lm = self.lm.lm
        for prompt, target in edits:
            text = lm.format(prompt)
            target_ids = lm._target_ids(text, target) + [lm.tokenizer.eos_token_id]
            self.adaptor.edit(self._ids(text), target_ids, target, prompt)
            self.edit_steps.append(self.adaptor.last_steps)
        self.lm.clear()

    def remove(self, prompt: str) -> bool:
        """Forget the edit made on ``prompt`` (its key goes once no other edit shares it)."""
        removed = self.adaptor.remove(prompt)
        self.lm.clear()
        return removed

    def routes(self, prompts: Sequence[str]) -> list[bool]:
        """Per prompt: does a codebook entry serve it?"""
        if not prompts or not len(self.adaptor.codebook):
            return [False] * len(prompts)
        queries = torch.stack([self._query(self.lm.format(p)) for p in prompts])
        return (self.adaptor.codebook.lookup(queries) >= 0).tolist()

    def predict(self, prompts: Sequence[str]) -> list[str]:
        prompts = list(prompts)
        self.last_routes = self.routes(prompts)
        misses = [p for p, hit in zip(prompts, self.last_routes) if not hit]
        answers = iter(self.models.base.generate(misses, self.models.options) if misses else [])
        out = []
        for prompt, hit in zip(prompts, self.last_routes):
            if not hit:
                out.append(next(answers))
                continue
            with self.adaptor.serve_next(-1):  # the prompt pass of this generate call
                out.append(self.lm.generate([prompt], self.models.options)[0])
        return out

    def teacher_forced(self, prompts: Sequence[str], targets: Sequence[str]) -> list[float]:
        hits = self.routes(prompts)
        miss_rows = [i for i, hit in enumerate(hits) if not hit]
        scores = [0.0] * len(prompts)
        if miss_rows:
            values = self.models.base.teacher_forced([prompts[i] for i in miss_rows], [targets[i] for i in miss_rows])
            for i, v in zip(miss_rows, values):
                scores[i] = v
        lm = self.lm.lm
        for i, hit in enumerate(hits):
            if hit:
                text = lm.format(prompts[i])
                with self.adaptor.serve_next(len(self._ids(text)) - 1), torch.inference_mode():
                    scores[i] = lm._token_accuracy(text, targets[i])
        return scores
