"""Device placement. The CUDA tests run where torch sees a GPU (the lent device machine) and are
skipped on the CPU-only CI; the CPU path is what every other test exercises."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serac.base import load_text_model
from serac.counterfactual import LMCounterfactual
from serac.editor import EditedModel
from serac.scope import ScopeClassifier, SentenceEncoder
from serac.store import EditStore

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_models_load_on_the_cpu_unless_asked(tiny_causal_dir):
    assert load_text_model(str(tiny_causal_dir)).device.type == "cpu"
    assert load_text_model(str(tiny_causal_dir), device="cpu").device.type == "cpu"


@cuda
@pytest.mark.parametrize("fixture", ["tiny_causal_dir", "tiny_seq2seq_dir"])
def test_gpu_model_matches_the_cpu_model(request, fixture):
    path = str(request.getfixturevalue(fixture))
    cpu = load_text_model(path, max_new_tokens=4, device="cpu")
    gpu = load_text_model(path, max_new_tokens=4, device="cuda")
    assert gpu.device.type == "cuda"
    prompts = ["who is the prime minister of the united kingdom", "what is the capital of australia"]
    with torch.inference_mode():
        batch_cpu = cpu._encode([cpu.format(p) for p in prompts], 4)
        batch_gpu = gpu._encode([gpu.format(p) for p in prompts], 4)
        assert batch_gpu["input_ids"].device.type == "cuda"
        if cpu.is_encoder_decoder:
            start = torch.full((2, 1), cpu.model.config.decoder_start_token_id)
            logits_cpu = cpu.model(**batch_cpu, decoder_input_ids=start).logits
            logits_gpu = gpu.model(**batch_gpu, decoder_input_ids=start.cuda()).logits
        else:
            logits_cpu, logits_gpu = cpu.model(**batch_cpu).logits, gpu.model(**batch_gpu).logits
    torch.testing.assert_close(logits_gpu.cpu(), logits_cpu, atol=1e-3, rtol=1e-3)
    answers = gpu.generate(prompts)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    scores = gpu.teacher_forced(prompts, ["keir starmer", "canberra"])
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert "".join(gpu.stream(prompts[0])).strip() == gpu.generate(prompts[:1])[0]


@cuda
def test_editor_routes_on_the_gpu(tiny_causal_dir, hashing_encoder):
    base = load_text_model(str(tiny_causal_dir), max_new_tokens=5, device="cuda")
    counterfactual = LMCounterfactual(load_text_model(str(tiny_causal_dir), max_new_tokens=5, device="cuda"))
    editor = EditedModel(base, ScopeClassifier(hashing_encoder, threshold=0.7), counterfactual, EditStore(":memory:"))
    edit = editor.add("who is the prime minister of the united kingdom", "keir starmer")
    prompts = ["Who is the prime minister of the United Kingdom?", "the quick brown fox"]
    answers = editor.generate(prompts)
    assert [a.source for a in answers] == ["counterfactual", "base"]
    assert answers[0].edit_id == edit.id
    assert answers[1].text == base.generate(prompts[1:])[0]  # out of scope: the base model's own answer


@cuda
def test_sentence_encoder_on_the_gpu(tmp_path):
    from tests.tasks.conftest import save_tiny_bert

    path = str(save_tiny_bert(tmp_path / "bert"))
    texts = ["who leads the uk", "capital of australia"]
    on_cpu = SentenceEncoder(path, device="cpu").encode(texts)
    gpu = SentenceEncoder(path, device="cuda")
    assert gpu.model.device.type == "cuda"
    np.testing.assert_allclose(gpu.encode(texts), on_cpu, atol=1e-4)
