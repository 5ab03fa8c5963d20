"""Would context-aware decoding make the counterfactual model copy edits exactly? (issue 14)

With every zsRE input routed to its fact's newest edit, the shipped counterfactual model still
answers about 6% of them wrong, mostly by mis-copying the edit's target ("Napolean Wars" for
"Napoleonic Wars", "Buda" for "Budapest"). Context-aware decoding (Shi et al., 2023, "Trusting Your
Evidence") scores each next token by (1 + alpha) log p(y | edit, query) - alpha log p(y | query),
among the tokens whose p(y | edit, query) is at least beta times the likeliest one's: it favours
what the edit adds over what the model would say without it.

This script measures that on the shipped counterfactual model with gold routing (each input given
its own record's edit, no scope): greedy against contrastive greedy, exact match as the benchmark
scores it, each flip listed. A prototype (one query at a time, with a KV cache per side), not the
serving path: it is not wired into `LMCounterfactual`.

    python scripts/context_contrast_check.py --data-dir ../shared/data --records 150 --alpha 1.0 --beta 0.5
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from serac.counterfactual import format_edit_prompt
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
    lm = EditedModel.from_pretrained(None).counterfactual.lm
    tokenizer, model = lm.tokenizer, lm.model
    records = load_zsre(args.data_dir / "zsre" / "zsre_mend_eval_portability_gpt4.json")
    picked = random.Random(args.seed).sample(range(len(records)), args.records)
    items = []
    for n, index in enumerate(picked):
        record = records[index]
        edit = Edit(id=n + 1, input=record.edit_input, target=record.edit_target, created_at=0.0, metadata={})
        items += [(probe.input, edit) for probe in record.in_scope]

    def ids(prompt: str) -> torch.Tensor:
        return tokenizer(lm.format(prompt), return_tensors="pt", add_special_tokens=not lm.use_chat_template)["input_ids"]

    @torch.no_grad()
    def answer(query: str, edit: Edit, alpha: float) -> str:
        with_edit, plain = ids(format_edit_prompt([edit], query)), ids(format_edit_prompt([], query).lstrip("\n"))
        cache_edit = cache_plain = None
        out: list[int] = []
        for _ in range(args.max_new_tokens):
            step = model(input_ids=with_edit, past_key_values=cache_edit, use_cache=True)
            cache_edit = step.past_key_values
            scores = torch.log_softmax(step.logits[0, -1].float(), -1)
            if alpha:
                step_plain = model(input_ids=plain, past_key_values=cache_plain, use_cache=True)
                cache_plain = step_plain.past_key_values
                without = torch.log_softmax(step_plain.logits[0, -1].float(), -1)
                plausible = scores >= scores.max() + math.log(args.beta)
                scores = torch.where(plausible, (1 + alpha) * scores - alpha * without, torch.tensor(-math.inf))
            token = int(scores.argmax())
            if token == tokenizer.eos_token_id:
                break
            out.append(token)
            if "\n" in tokenizer.decode(out).strip():  # the benchmark scores the first line
                break
            with_edit = plain = torch.tensor([[token]])
        return tokenizer.decode(out, skip_special_tokens=True).strip()

    runs = {}
    for name, alpha in (("greedy", 0.0), ("contrastive", args.alpha)):
        answers = [answer(q, e, alpha) for q, e in tqdm(items, desc=name)]
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
