"""The paper's other two editing problems, through the same editor, training and evaluation:

- ``fc``: fact-checking on VitaminC (a claim classifier edited with evidence);
- ``sentiment``: ConvSent-style sentiment editing of a chat model ("Topic: X -> Sentiment: ...").

Entry points for the command line live in :mod:`serac.tasks.cli` (``train_task``, ``eval_task``,
``python -m serac.tasks``). Nothing here is imported by ``serac`` itself.
"""

TASKS = ("fc", "sentiment")
