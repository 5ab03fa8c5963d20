"""Train the FC task's (evidence, claim) classifier (serac.train.pair_classifier) into --out.

    OMP_NUM_THREADS=1 python scripts/train_fc_classifier.py --out /work/artifacts/fc_classifier
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main(argv: list[str] | None = None) -> int:
    from serac.errors import SeracError
    from serac.train.pair_classifier import PairClassifierConfig, train_pair_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Output directory (resumes a killed run).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "fact_checking", help="fact_checking folder.")
    parser.add_argument("--vitaminc", type=Path, default=DEFAULT_DATA / "vitaminc_sample", help="vitaminc_sample.")
    parser.add_argument("--config", type=Path, help="A JSON file of PairClassifierConfig fields.")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON",
                        help="Override config fields, e.g. pretrain_pairs=12000 finetune_epochs=1.")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        config = PairClassifierConfig.load(args.config) if args.config else PairClassifierConfig()
        changes = {}
        for item in args.set:
            name, _, value = item.partition("=")
            changes[name] = json.loads(value)
        config = config.replace(**changes)
        summary = train_pair_classifier(args.data, args.vitaminc, args.out, config)
    except SeracError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
