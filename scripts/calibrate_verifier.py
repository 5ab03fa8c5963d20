"""Re-calibrate an artifact's scope-verifier threshold for another candidate floor, as `serac train`
calibrates it (``serac.train.calibrate.choose_threshold`` on the artifact's validation split, with the
validation edits' same-subject questions as their own part), and print the in-scope and false-route
rates at a few thresholds. With ``--write``, the artifact's serac_config.json takes the new floor and
threshold.

    python scripts/calibrate_verifier.py --model ARTIFACT --floor 0.8 [--verifier DIR] [--write]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from serac.config import SeracConfig
from serac.editor import CONFIG_FILE
from serac.models import loadable_model
from serac.train.calibrate import choose_threshold
from serac.train.config import TrainConfig
from serac.train.pipeline import load_training_data, verifier_validation
from serac.train.scope import encode, load_sentence_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="a `serac train` artifact with a verifier")
    parser.add_argument("--floor", required=True, type=float)
    parser.add_argument("--verifier", default=None, help="score with this verifier instead (e.g. a compact one)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from sentence_transformers import CrossEncoder

    config = TrainConfig.load(args.model / "train_config.json")
    serac = SeracConfig.load(args.model / CONFIG_FILE)
    dual = load_sentence_encoder(str(args.model / serac.scope.encoder))
    verifier = CrossEncoder(loadable_model(args.verifier or str(args.model / serac.scope.cross_encoder)), device="cpu")
    scores = verifier_validation(config, load_training_data(config), lambda t: encode(dual, t), verifier, args.floor)
    threshold, objective = choose_threshold(scores)
    table = {}
    for t in sorted({0.3, 0.5, 0.7, 0.9, round(threshold, 4), round(serac.scope.cross_encoder_threshold, 4)}):
        table[str(t)] = {source: {"in_scope": round(float((np.asarray(s.positive) >= t).mean()), 4) if s.positive else None,
                                  "false_routes": round(float((np.asarray(s.negative) >= t).mean()), 4) if s.negative else None}
                         for source, s in scores.items()}
    print(json.dumps({"floor": args.floor, "threshold": threshold, "objective": round(objective, 4),
                      "previous_threshold": serac.scope.cross_encoder_threshold, "rates_by_threshold": table}, indent=1))
    if args.write:
        serac.scope.cross_encoder_floor, serac.scope.cross_encoder_threshold = args.floor, threshold
        serac.save(args.model / CONFIG_FILE)


if __name__ == "__main__":
    main()
