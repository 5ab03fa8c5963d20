"""Would context-aware decoding make the counterfactual model copy edits exactly? (issue 14)

With every zsRE input routed to its fact's newest edit, the shipped counterfactual model still
answers about 6% of them wrong, mostly by mis-copying the edit's target ("Napolean Wars" for
"Napoleonic Wars", "Buda" for "Budapest"). Context-aware decoding (Shi et al., 2023, "Trusting Your
Evidence") scores each next token by (1 + alpha) log p(y | edit, query) - alpha log p(y | query),
among the tokens whose p(y | edit, query) is at least beta times the likeliest one's: it favours
what the edit adds over what the model would say without it.

This script measures that on the shipped counterfactual model with gold routing (each input given
its own record's edit, no scope): plain greedy decoding against `counterfactual.contrast` (the
model's own decoding path, batched), exact match as the benchmark scores it, each flip listed.

    python scripts/context_contrast_check.py --data-dir ../shared/data --records 150 --alpha 1.0 --beta 0.5
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from tqdm import tqdm

from serac.base import GenerationOptions
from serac.data import load_zsre
from serac.editor import EditedModel
from serac.edits import Edit
from serac.eval.metrics import exact_match


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--records", type=int, default=150, help="zsRE eval records (seeded sample); 2 inputs each")
    parser.add_argument("--alpha", type=float, default=1.0, help="contrast weight")
    parser.add_argument("--beta", type=float, default=0.5, help="plausibility: keep tokens with p >= beta * max p")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON with the counts and every flip")
    args = parser.parse_args()
    started = time.time()
    counterfactual = EditedModel.from_pretrained(None).counterfactual
    counterfactual.plausibility = args.beta
    records = load_zsre(args.data_dir / "zsre" / "zsre_mend_eval_portability_gpt4.json")
    picked = random.Random(args.seed).sample(range(len(records)), args.records)
    items = []
    for n, index in enumerate(picked):
        record = records[index]
        edit = Edit(id=n + 1, input=record.edit_input, target=record.edit_target, created_at=0.0, metadata={})
        items += [(probe.input, edit) for probe in record.in_scope]
    options = GenerationOptions(max_new_tokens=args.max_new_tokens)
    batch = counterfactual.lm.batch_size

    runs = {}
    for name, alpha in (("greedy", 0.0), ("contrastive", args.alpha)):
        counterfactual.contrast = alpha
        answers = []
        for start in tqdm(range(0, len(items), batch), desc=name):
            rows = items[start:start + batch]
            answers += counterfactual.generate([q for q, _ in rows], [[e] for _, e in rows], options)
        runs[name] = (answers, [exact_match(a, e.target) for a, (_, e) in zip(answers, items)])
    (greedy, greedy_ok), (contrastive, contrastive_ok) = runs["greedy"], runs["contrastive"]
    flips = [{"query": q, "target": e.target, "greedy": g, "contrastive": c, "fixed": c_ok}
             for (q, e), g, c, g_ok, c_ok in zip(items, greedy, contrastive, greedy_ok, contrastive_ok) if g_ok != c_ok]
    result = {"command": "python scripts/context_contrast_check.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out" and v is not None),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), "wall_s": round(time.time() - started),
              "inputs": len(items), "greedy_right": sum(greedy_ok), "contrastive_right": sum(contrastive_ok),
              "fixed": sum(f["fixed"] for f in flips), "broken": sum(not f["fixed"] for f in flips), "flips": flips}
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
