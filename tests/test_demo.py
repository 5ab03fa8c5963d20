"""run_demo on stand-in models: the edits land, the table renders, unrelated rows are unchanged."""

from __future__ import annotations

import io

from rich.console import Console

from conftest import HashingEncoder
from serac.base import CallableModel, query_text
from serac.demo import DEMO_EDITS, UNRELATED, run_demo
from serac.editor import EditedModel
from serac.scope import ScopeClassifier


class EchoCounterfactual:
    def generate(self, queries, edits, options=None):
        return [f"{e[0].target} [/] edited" for e in edits]  # markup-like text must print literally


def test_run_demo():
    base = CallableModel(lambda prompts: [f"base answer to {query_text(p)} [/]" for p in prompts])
    editor = EditedModel(base, ScopeClassifier(HashingEncoder(), threshold=0.9), EchoCounterfactual())
    out = io.StringIO()
    run_demo(editor, Console(file=out, width=400, color_system=None))
    text = out.getvalue()
    assert [(e.input, e.target) for e in editor.edits] == [(i, t) for i, t, _ in DEMO_EDITS]
    assert editor.version == len(DEMO_EDITS)
    for edit_input, target, _ in DEMO_EDITS:
        assert f"{target} [/] edited (changed)" in text
    assert f"Unrelated questions unchanged: {len(UNRELATED)}/{len(UNRELATED)}." in text
    assert text.count("base model (best score") >= len(UNRELATED)
