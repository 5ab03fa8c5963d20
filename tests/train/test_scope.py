import numpy as np
import pytest
import torch

from serac.data import load_counterfact, load_zsre
from serac.scope import SentenceEncoder
from serac.train import scope as scope_module
from serac.train.config import ScopeTrainConfig
from serac.train.pairs import mine_neighbours, records_from_examples
from serac.train.scope import ScopeLoss, encode, freeze_embeddings, load_sentence_encoder, train_scope_encoder


class Interrupted(Exception):
    pass


@pytest.fixture
def material(data_files, tiny_encoder_dir):
    records = records_from_examples(load_zsre(data_files["zsre"], skip_malformed=True), "zsre")
    records += records_from_examples(load_counterfact(data_files["counterfact"]), "counterfact")
    model = load_sentence_encoder(str(tiny_encoder_dir))
    neighbours = mine_neighbours(records, lambda t: encode(model, t), k=4)
    return records, neighbours


def _config(**changes):
    values = dict(steps=30, batch_records=8, lr=2e-3, warmup=0.1, checkpoint_every=5, freeze_embeddings=False)
    values.update(changes)
    return ScopeTrainConfig(**values)


def test_loss_goes_down(material, tiny_encoder_dir):
    records, neighbours = material
    model = load_sentence_encoder(str(tiny_encoder_dir))
    history = train_scope_encoder(model, records, neighbours, _config(), seed=0, progress=False)
    assert len(history["loss"]) == 30
    assert np.mean(history["loss"][-5:]) < 0.7 * np.mean(history["loss"][:5])
    assert set(history) == {"loss", "q2k", "k2q", "sigmoid"}


def test_save_load_round_trip_gives_identical_scores(material, tiny_encoder_dir, tmp_path):
    records, neighbours = material
    model = load_sentence_encoder(str(tiny_encoder_dir))
    train_scope_encoder(model, records, neighbours, _config(steps=3), seed=0, progress=False)
    model.save(str(tmp_path / "saved"), create_model_card=False)
    texts = [r.key for r in records] + [q for r in records for q in r.positives]
    reloaded = SentenceEncoder(str(tmp_path / "saved"))  # what the editor loads
    np.testing.assert_array_equal(reloaded.encode(texts), encode(model, texts))


def test_resume_continues_exactly_from_the_checkpoint(material, tiny_encoder_dir, tmp_path, monkeypatch):
    records, neighbours = material
    config = _config(steps=8, checkpoint_every=4)
    straight = load_sentence_encoder(str(tiny_encoder_dir))
    full = train_scope_encoder(straight, records, neighbours, config, seed=0, progress=False)

    original = scope_module.save_checkpoint

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        raise Interrupted

    monkeypatch.setattr(scope_module, "save_checkpoint", save_then_stop)
    checkpoint = tmp_path / "scope.pt"
    with pytest.raises(Interrupted):
        train_scope_encoder(load_sentence_encoder(str(tiny_encoder_dir)), records, neighbours, config, seed=0,
                            checkpoint=checkpoint, progress=False)
    assert checkpoint.exists()
    monkeypatch.setattr(scope_module, "save_checkpoint", original)
    resumed = load_sentence_encoder(str(tiny_encoder_dir))
    history = train_scope_encoder(resumed, records, neighbours, config, seed=0, checkpoint=checkpoint, progress=False)
    assert history["loss"] == pytest.approx(full["loss"], rel=1e-5)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_frozen_embeddings_do_not_move(material, tiny_encoder_dir):
    records, neighbours = material
    model = load_sentence_encoder(str(tiny_encoder_dir))
    frozen = freeze_embeddings(model)
    assert frozen > 0
    before = {n: p.clone() for n, p in model.named_parameters()}
    train_scope_encoder(model, records, neighbours, _config(steps=2, freeze_embeddings=True), seed=0, progress=False)
    after = dict(model.named_parameters())
    moved = {name for name, value in before.items() if not torch.equal(value, after[name])}
    assert moved and all(after[name].requires_grad for name in moved)
    assert any("embeddings" in name for name, p in after.items() if not p.requires_grad)


def test_loss_prefers_separated_scores():
    loss = ScopeLoss()
    keys = torch.nn.functional.normalize(torch.eye(3, 8), dim=-1)
    good_queries = torch.cat([keys, torch.nn.functional.normalize(torch.ones(1, 8) - 0.9 * keys.sum(0), dim=-1)])
    bad_queries = good_queries[[1, 2, 0, 3]]
    ignore = torch.zeros(3, 4, dtype=torch.bool)
    assert loss(keys, good_queries, 3, ignore)[0] < loss(keys, bad_queries, 3, ignore)[0]


def test_needs_two_records(material, tiny_encoder_dir):
    records, neighbours = material
    with pytest.raises(ValueError, match="at least 2 edit records"):
        train_scope_encoder(load_sentence_encoder(str(tiny_encoder_dir)), records[:1], neighbours, _config(), 0)
