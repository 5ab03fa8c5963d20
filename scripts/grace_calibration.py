"""GRACE's block and deferral radius, measured on a *training* file (zsRE's or CounterFact's; disjoint
from the evaluation file), and its value optimisation at a few learning rates (serac/eval/README.md,
section GRACE).

    python scripts/grace_calibration.py [--data-dir ../shared/data] [--task zsre|counterfact]
                                        [--blocks -6,-10,-3] [--records 120] [--lrs 1,3,6] [--edits 12]

Per block: the length of the last-token states, and percentiles (10/25/50/75/90) of the Euclidean
distance from a rephrasing to its own edit's key, from a rephrasing to the nearest *other* edit's key,
from an NQ-open question to the nearest key, from an edit's own out-of-scope prompt (zsRE: an NQ
question; CounterFact: the same relation with another subject) to the nearest key, and from a key to
the nearest other key. ``--lrs ""`` skips the learning-rate part. Per learning
rate (at most 25 steps): Adam steps per new value, and how many edit inputs then answer exactly their
target. CPU, one
torch thread; a few minutes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from serac.base import load_text_model
from serac.baselines.grace import GraceAdaptor, GraceConfig
from serac.config import DEFAULT_LM
from serac.data import load_counterfact, load_nq, load_zsre

TRAIN_FILES = {"zsre": ("zsre/zsre_mend_train-1k.json", load_zsre),
               "counterfact": ("counterfact/counterfact-train.json", load_counterfact)}


def percentiles(values: torch.Tensor) -> list[float]:
    return [round(float(v), 1) for v in torch.quantile(values, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9]))]


def share(distances: torch.Tensor, radius: float) -> str:
    return f"{int((distances <= radius).sum())}/{len(distances)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--task", choices=sorted(TRAIN_FILES), default="zsre")
    parser.add_argument("--blocks", default="-6,-10,-3")
    parser.add_argument("--records", type=int, default=120)
    parser.add_argument("--radii", default="", help="also print, per radius, the share of rephrasings within "
                        "it of their own key and of out-of-scope prompts and NQ questions within it of some key")
    parser.add_argument("--lrs", default="1,3,6")
    parser.add_argument("--edits", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm = load_text_model(DEFAULT_LM, max_new_tokens=16, batch_size=1)
    file, load = TRAIN_FILES[args.task]
    records = load(args.data_dir / file, args.records + 30 + args.edits)
    examples, held = records[: args.records], records[args.records + 30 :]
    questions = load_nq(args.data_dir / "nq_open" / "NQ-open.dev.jsonl")[:60]

    def ids(text: str) -> list[int]:
        return lm.tokenizer(lm.format(text), add_special_tokens=not lm.use_chat_template)["input_ids"]

    for block in (int(b) for b in args.blocks.split(",")):
        adaptor = GraceAdaptor(lm.model, GraceConfig(layer=block))
        began = time.perf_counter()
        keys = torch.stack([adaptor.query(ids(e.edit_input)) for e in examples])
        rephrased = [(i, adaptor.query(ids(e.generalization_probes[0].input)))
                     for i, e in enumerate(examples) if e.generalization_probes]
        own = torch.stack([torch.dist(keys[i], q) for i, q in rephrased])
        to_keys = torch.cdist(torch.stack([q for _, q in rephrased]), keys)
        for row, (i, _) in enumerate(rephrased):
            to_keys[row, i] = float("inf")
        nq = torch.cdist(torch.stack([adaptor.query(ids(q.input)) for q in questions]), keys).min(dim=1).values
        local = torch.stack([adaptor.query(ids(e.out_of_scope[0].input)) for e in examples if e.out_of_scope])
        local = torch.cdist(local, keys).min(dim=1).values
        between = torch.cdist(keys, keys).fill_diagonal_(float("inf")).min(dim=1).values
        print(f"block {block}: state length {keys.norm(dim=1).mean():.0f}; rephrasing -> own key {percentiles(own)}; "
              f"rephrasing -> nearest other key {percentiles(to_keys.min(dim=1).values)}; "
              f"NQ question -> nearest key {percentiles(nq)}; "
              f"out-of-scope prompt -> nearest key {percentiles(local)}; key -> nearest other key {percentiles(between)} "
              f"({time.perf_counter() - began:.0f} s)", flush=True)
        for radius in (float(r) for r in args.radii.split(",") if r):
            print(f"  radius {radius:g}: rephrasings served by their own key {share(own, radius)}, out-of-scope "
                  f"prompts served by some key {share(local, radius)}, NQ questions {share(nq, radius)}", flush=True)
        adaptor.close()

    for lr in (float(x) for x in args.lrs.split(",") if x):
        adaptor = GraceAdaptor(lm.model, GraceConfig(lr=lr, steps=25))
        steps, exact, began = [], 0, time.perf_counter()
        for e in held:
            text = lm.format(e.edit_input)
            adaptor.edit(ids(e.edit_input), lm._target_ids(text, e.edit_target) + [lm.tokenizer.eos_token_id],
                         e.edit_target, e.edit_input)
            steps.append(adaptor.last_steps)
        for e in held:
            with adaptor.serve_next():
                exact += lm.generate([e.edit_input])[0].strip() == e.edit_target.strip()
        print(f"lr {lr:g}: steps per edit {steps}; exact answers {exact}/{len(held)}; "
              f"{(time.perf_counter() - began) / len(held):.2f} s per edit and answer (wall)", flush=True)
        adaptor.close()


if __name__ == "__main__":
    main()
