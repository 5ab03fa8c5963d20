"""Does training the scope with same-subject, other-relation negatives stop hijacking? (issue 14, item 4)

Routing only. For a `serac train` run with ``scope.subject_negatives`` (its output directory, finished
or stopped: the latest scope checkpoint is used), and a reference scope encoder with its threshold:
calibrate the run's threshold on its own validation split (as `serac train` does), then route a hijack
set (serac/eval/hijack.py) built from CounterFact training records the run did NOT train on (those
after its ``counterfact_limit``), with its edits in memory: the share of hijack queries whose best key
clears the threshold, and the share of the edits' own inputs and rephrasings whose best key is their
own edit and clears it.

    python scripts/subject_negatives_check.py --run RUN_DIR --reference ARTIFACT [--out benchmarks/extra/subject_negatives.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from serac.data import load_counterfact
from serac.editor import load_artifact_config
from serac.eval.hijack import KINDS, build_hijack_set
from serac.eval.metrics import rate_entry
from serac.train.calibrate import choose_threshold, score_validation
from serac.train.checkpoint import load_trainable_state
from serac.train.config import TrainConfig
from serac.train.pipeline import load_training_data
from serac.train.scope import encode, load_sentence_encoder


def route(embed, hijack, threshold: float) -> dict:
    keys = embed([e.edit_input for e in hijack.edits])
    queries = embed([q.text for q in hijack.queries])
    best = (queries @ keys.T).max(1)
    probes = [(p.input, n) for n, e in enumerate(hijack.edits) for p in e.in_scope]
    sims = embed([t for t, _ in probes]) @ keys.T
    own = np.array([sims[i].argmax() == n and sims[i, n] >= threshold for i, (_, n) in enumerate(probes)])
    out = {kind: rate_entry(int(sum(b >= threshold for b, q in zip(best, hijack.queries) if q.kind == kind)),
                       len(hijack.of_kind(kind))) for kind in KINDS}
    out["all"] = rate_entry(int((best >= threshold).sum()), len(best))
    out["in_scope_routed_to_own"] = rate_entry(int(own.sum()), len(own))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="output directory of a serac train run")
    parser.add_argument("--reference", required=True, help="artifact whose scope encoder and threshold to compare with")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--n-counterfact", type=int, default=200)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    started = time.time()
    run = Path(args.run)
    config = TrainConfig.from_dict(json.loads((run / "checkpoints" / "state.json").read_text())["config"])
    if (run / "scope_encoder").is_dir():  # the scope phase finished
        model, step = load_sentence_encoder(str(run / "scope_encoder")), config.scope.steps
    else:  # stopped: its latest checkpoint
        model = load_sentence_encoder(config.scope.encoder)
        state = torch.load(run / "checkpoints" / "scope.pt", map_location="cpu", weights_only=True)
        load_trainable_state(model, state["modules"]["encoder"])
        step = int(state["step"])
    model.eval()
    data = load_training_data(config)
    threshold, _ = choose_threshold(score_validation(lambda t: encode(model, t), data.val))

    held_out = load_counterfact(Path(args.data_dir) / "counterfact" / "counterfact-train.json",
                                skip_malformed=True)[config.data.counterfact_limit or 0:]
    hijack = build_hijack_set(held_out, (), args.n_counterfact, 0, seed=0)
    reference = load_artifact_config(args.reference)
    ref_model = load_sentence_encoder(reference.scope.encoder)
    result = {
        "command": f"python scripts/subject_negatives_check.py --run {args.run} --reference {args.reference}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": "2-core CPU shared with other jobs",
        "run": {"start_encoder": config.scope.encoder, "subject_negatives": config.scope.subject_negatives,
                "steps_done": step, "steps_planned": config.scope.steps, "counterfact_limit": config.data.counterfact_limit,
                "threshold": round(float(threshold), 4)},
        "reference": {"encoder": reference.scope.encoder, "threshold": reference.scope.threshold},
        "hijack_set": {"edits": len(hijack.edits), **{kind: len(hijack.of_kind(kind)) for kind in KINDS}},
        "routing": {"reference": route(lambda t: encode(ref_model, t), hijack, reference.scope.threshold),
                    "subject_negatives": route(lambda t: encode(model, t), hijack, float(threshold)),
                    # the recalibrated threshold moves too: the same encoder at the reference's threshold
                    "subject_negatives_at_reference_threshold": route(lambda t: encode(model, t), hijack,
                                                                      reference.scope.threshold)},
    }
    result["wall_s"] = round(time.time() - started, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
