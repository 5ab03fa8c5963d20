"""Where the scope sends the scored CounterFact inputs with N edits in memory: each in-scope input
to its own edit, to another edit of the same subject and relation (newer or older), to another
edit, or to none; each locality prompt to no edit, or to an edit that asks its (subject, relation)
(it is in that edit's scope), or to another edit. Routing only (no generation), the same edits and
seeded sample as `serac eval --task counterfact --checkpoints N --sample S`.

    OMP_NUM_THREADS=1 python scripts/counterfact_routes.py --n 10000 --sample 500 --out routes.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "counterfact" / "counterfact-edit.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="counterfact-edit.json")
    parser.add_argument("--model", default="serac/defaults", help="Artifact to route with.")
    parser.add_argument("--n", type=int, default=10000, help="Edits in memory (the first N, file order).")
    parser.add_argument("--sample", type=int, default=500, help="Scored edits (the runner's seeded sample).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=10, help="Wrong routes to print per kind.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from serac.editor import EditedModel
    from serac.eval.runner import load_task, sample_indices

    task = load_task("counterfact", args.data, limit=args.n)
    if task.edit_fact is None or task.prompt_fact is None:
        print("error: the records name no subject in their prompts; cannot tell facts apart", file=sys.stderr)
        return 1
    examples = task.examples
    scored = sample_indices(len(examples), args.sample, args.seed)
    model = EditedModel.from_pretrained(args.model)
    row_of = {edit.id: i for i, edit in enumerate(model.add_many([(e.edit_input, e.edit_target) for e in examples]))}
    changed = {task.edit_fact(e) for e in examples} - {None}

    in_scope = [(i, "input" if k == 0 else "rephrasing", p.input) for i in scored
                for k, p in enumerate(examples[i].in_scope)]
    locality = [(i, "locality", p.input) for i in scored for p in examples[i].out_of_scope]
    decisions = model.route([p for _, _, p in in_scope + locality])
    counts: Counter[str] = Counter()
    shown: list[dict] = []
    for (i, kind, prompt), decision in zip(in_scope + locality, decisions):
        j = None if decision.edit is None else row_of.get(decision.edit.id)
        if kind == "locality":
            covered = task.prompt_fact(prompt) in changed
            counts["locality prompts whose fact a stored edit changes"] += covered
            where = "none" if j is None else "an edit of its fact" if task.edit_fact(examples[j]) == task.prompt_fact(
                prompt) else "another edit"
        elif j is None:
            where = "none"
        elif j == i:
            where = "own edit"
        elif task.edit_fact(examples[j]) == task.edit_fact(examples[i]):
            where = "a newer edit of its fact" if j > i else "an older edit of its fact"
        else:
            where = "another edit"
        counts[f"{kind}: {where}"] += 1
        if where in ("another edit", "an older edit of its fact") and sum(
                s["kind"] == kind for s in shown) < args.show:
            shown.append({"kind": kind, "prompt": prompt, "routed_to": examples[j].edit_input,
                          "routed_target": examples[j].edit_target, "own": examples[i].edit_input})
    report = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
              "model": args.model, "n_edits": len(examples), "scored_edits": len(scored),
              "counts": dict(sorted(counts.items())), "wrong_routes": shown}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["counts"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
