"""The paper's other two editing problems, through the same editor, training and evaluation:

- ``fc``: fact-checking on VitaminC (a claim classifier edited with evidence);
- ``sentiment``: ConvSent-style sentiment editing of a chat model ("Topic: X -> Sentiment: ...").

Library entry points live in :mod:`serac.tasks.api` (``train_task``, ``eval_task``); the command line
(``serac tasks``, ``python -m serac.tasks``) in :mod:`serac.tasks.cli`. Nothing here is imported by
``serac`` itself.
"""

TASKS = ("fc", "sentiment")
BATCH_SIZES = (1, 5, 25, 75)  # the batch sizes (and sequential checkpoints) every task reports
TASK_METHODS = ("serac", "icl", "ft")  # what each task evaluates (fc/evaluate.py, sentiment/evaluate.py)
