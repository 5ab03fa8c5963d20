"""What compacting a cross-encoder scope verifier costs (issue 14, item 2): its delta's size at each
rank and how far the rebuilt model's scores move from the full one's, on real (edit input, query)
pairs, side by side in one run.

Pairs: per zsRE train-1k edit, (edit input, its rephrasing) and (edit input, the next edit's
input); per CounterFact edit, (edit prompt, a paraphrase) and (edit prompt, a neighbourhood prompt).
Scores are ``CrossEncoder.predict``'s (sigmoid) probabilities; agreement is of the decision at
``--threshold``; ``worst`` lists the pairs whose score moved most (full, compact).

    python scripts/compact_ce_check.py --cross-encoder DIR [--base embedded:all-minilm-l6-v2]
        [--rank 8 --rank 16] [--pairs 500] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from serac.data import load_counterfact, load_zsre
from serac.models import resolve_model
from serac.train.compact import compact_cross_encoder

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def pairs(data: Path, count: int) -> list[tuple[str, str]]:
    zsre = load_zsre(data / "zsre" / "zsre_mend_train-1k.json", skip_malformed=True)
    counterfact = load_counterfact(data / "counterfact" / "counterfact-edit.json", limit=count)
    out: list[tuple[str, str]] = []
    for i, edit in enumerate(zsre[: count // 4]):
        out.append((edit.edit_input, edit.in_scope[-1].input))
        out.append((edit.edit_input, zsre[(i + 1) % len(zsre)].edit_input))
    for edit in counterfact[: count // 4]:
        out.append((edit.edit_input, edit.in_scope[-1].input))
        out.append((edit.edit_input, edit.out_of_scope[0].input if edit.out_of_scope else edit.edit_input))
    return out[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cross-encoder", required=True, type=Path)
    parser.add_argument("--base", default="embedded:all-minilm-l6-v2")
    parser.add_argument("--rank", type=int, action="append")
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from sentence_transformers import CrossEncoder

    rows = pairs(args.data.resolve(), args.pairs)
    full = CrossEncoder(str(args.cross_encoder), device="cpu").predict(rows, batch_size=64, convert_to_numpy=True)
    result: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                 "machine": f"{platform.machine()} CPU, shared", "pairs": len(rows),
                                 "full_in_scope": int((full >= args.threshold).sum()), "ranks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for rank in args.rank or [8, 16]:
            delta = Path(tmp) / f"rank{rank}"
            size, kept = compact_cross_encoder(args.cross_encoder, args.base, delta, rank)
            scores = CrossEncoder(resolve_model(str(delta)), device="cpu").predict(rows, batch_size=64,
                                                                                convert_to_numpy=True)
            diff = np.abs(scores - full)
            agree = float(((scores >= args.threshold) == (full >= args.threshold)).mean())
            result["ranks"][rank] = {"bytes": size, "energy_kept": round(kept, 4),  # type: ignore[index]
                                     "max_abs_diff": round(float(diff.max()), 4),
                                     "mean_abs_diff": round(float(diff.mean()), 4), "decision_agreement": agree,
                                     "pairs_over_0.1": int((diff > 0.1).sum()), "pairs_over_0.5": int((diff > 0.5).sum()),
                                     "worst": [[*rows[i], round(float(full[i]), 3), round(float(scores[i]), 3)]
                                               for i in np.argsort(-diff)[:3]]}
            print(rank, result["ranks"][rank], flush=True)  # type: ignore[index]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
