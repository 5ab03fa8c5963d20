"""serac.models: a damaged cached weight file is a clear error naming the file to delete."""

from __future__ import annotations

import shutil

import pytest

from serac.base import load_text_model
from serac.errors import ModelNotAvailableError


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_weights_name_the_file(tiny_causal_dir, tmp_path):
    model_dir = shutil.copytree(tiny_causal_dir, tmp_path / "model")
    truncate(model_dir / "model.safetensors")
    with pytest.raises(ModelNotAvailableError, match=r"weight file .*model\.safetensors is damaged .*truncated"
                                                     r".*delete .*model\.safetensors"):
        load_text_model(str(model_dir))


def test_truncated_embedded_cache_says_which_folder_to_delete(tiny_causal_dir, tmp_path, monkeypatch):
    """The embedded SmolLM2 conversion cache: deleting its folder makes serac convert it again."""
    monkeypatch.setenv("SERAC_HOME", str(tmp_path / "home"))
    cached = shutil.copytree(tiny_causal_dir, tmp_path / "home" / "models" / "smollm2-135m-instruct")
    truncate(cached / "model.safetensors")
    with pytest.raises(ModelNotAvailableError, match=rf"delete the folder {cached} .*converts the model again"):
        load_text_model("embedded:smollm2-135m-instruct")


def test_intact_weights_load(tiny_causal_dir):
    assert load_text_model(str(tiny_causal_dir), max_new_tokens=2).generate(["q"])[0] is not None
