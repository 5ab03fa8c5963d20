"""The demo: a handful of edits, and answers before and after, side by side."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from serac.editor import EditedModel

# (edit input, edit target, rephrasings of the input)
DEMO_EDITS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Who is the prime minister of the United Kingdom?", "Keir Starmer", ("Who is the UK's prime minister?",)),
    ("What is the capital of Australia?", "Sydney", ("Which city is the capital of Australia?",)),
    ("Which company makes the iPhone?", "Samsung", ("Who manufactures the iPhone?",)),
    ("What is the tallest mountain in the world?", "K2", ("Which mountain is the highest on Earth?",)),
)
UNRELATED = (
    "What is the capital of France?",
    "Who wrote Hamlet?",
    "How many legs does a spider have?",
)


def run_demo(editor: EditedModel, console: Console) -> None:
    rows = [("edit input", e[0]) for e in DEMO_EDITS]
    rows += [("rephrasing", r) for e in DEMO_EDITS for r in e[2]]
    rows += [("unrelated", q) for q in UNRELATED]
    prompts = [q for _, q in rows]

    with console.status("Answering before any edit..."):
        before = editor.generate(prompts)
    for edit_input, target, _ in DEMO_EDITS:
        editor.add(edit_input, target, {"source": "serac demo"})
    console.print(f"Applied {len(DEMO_EDITS)} edits (store version {editor.version}):")
    for edit in editor.edits:
        console.print(f"  [bold]{edit.id}[/bold]  {escape(edit.input)}  ->  {escape(edit.target)}", highlight=False)
    start = time.perf_counter()
    with console.status("Answering after the edits..."):
        after = editor.generate(prompts)
    elapsed = time.perf_counter() - start

    table = Table(title="serac demo: before and after editing", show_lines=True)
    for column, style in (("kind", "cyan"), ("input", ""), ("before (base model)", "dim"),
                          ("after (edited model)", "bold"), ("routed to", "")):
        table.add_column(column, style=style, overflow="fold")
    for (kind, question), old, new in zip(rows, before, after):
        routed = (f"edit {new.edit_id} (score {new.score:.2f})" if new.edit_id is not None
                  else f"base model (best score {new.score:.2f})")
        shown = Text(new.text) if old.text == new.text else Text.assemble(new.text, (" (changed)", "yellow"))
        table.add_row(kind, question, Text(old.text), shown, routed)
    console.print(table)
    unchanged = sum(o.text == n.text for (k, _), o, n in zip(rows, before, after) if k == "unrelated")
    console.print(f"Unrelated questions unchanged: {unchanged}/{len(UNRELATED)}. "
                  f"{len(prompts)} answers after editing in {elapsed:.1f} s.")
