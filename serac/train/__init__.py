"""Training of the scope classifier and the counterfactual model (``serac train``).

    from serac.train import TrainConfig, run_training
    config = TrainConfig()
    config.data.zsre_train = "shared/data/zsre/zsre_mend_train-1k.json"
    config.data.counterfact_train = "shared/data/counterfact/counterfact-train.json"
    run_training(config, "trained/")          # then EditedModel.from_pretrained("trained/")

Nothing heavy is imported here: torch, peft and sentence-transformers load with the phase that
needs them.
"""

from serac.train.config import (
    CounterfactualTrainConfig,
    CrossEncoderTrainConfig,
    DataConfig,
    ScopeTrainConfig,
    TrainConfig,
)


def run_training(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`serac.train.pipeline.run_training` (imported on first call, not at import)."""
    from serac.train.pipeline import run_training as run

    return run(*args, **kwargs)


__all__ = [
    "CounterfactualTrainConfig",
    "CrossEncoderTrainConfig",
    "DataConfig",
    "ScopeTrainConfig",
    "TrainConfig",
    "run_training",
]
