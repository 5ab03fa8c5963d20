"""Evaluation: metrics, editing methods (serac and baselines), batch/sequential runners, cost, reports.

See ``serac/eval/README.md`` for the metric definitions and the conflicting-edits policy, and
``serac eval --help`` / ``serac bench --help`` for the commands.
"""

from serac.eval.methods import METHODS, EditingMethod, EvalModels, MethodOptions, build_method
from serac.eval.runner import EvalSettings, Runner, RunResult, Score, Task, load_task

__all__ = [
    "METHODS",
    "EditingMethod",
    "EvalModels",
    "EvalSettings",
    "MethodOptions",
    "RunResult",
    "Runner",
    "Score",
    "Task",
    "build_method",
    "load_task",
]
