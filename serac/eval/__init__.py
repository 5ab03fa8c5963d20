"""Evaluation: metrics, editing methods (serac and baselines), batch/sequential runners, cost, reports.

See ``serac/eval/README.md`` for the metric definitions and the conflicting-edits policy, and
``serac eval --help`` / ``serac bench --help`` for the commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serac.lazy import lazy_getattr

# Loaded on first use: importing ``serac.eval.results`` or ``serac.eval.metrics`` need not pull in torch.
_EXPORTS = {
    **dict.fromkeys(("METHODS", "EditingMethod", "EvalModels", "MethodOptions", "build_method"), "serac.eval.methods"),
    **dict.fromkeys(("EvalSettings", "Runner", "Task", "load_task"), "serac.eval.runner"),
    **dict.fromkeys(("RunResult", "Score"), "serac.eval.results"),
}

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)


if TYPE_CHECKING:
    from serac.eval.methods import METHODS, EditingMethod, EvalModels, MethodOptions, build_method
    from serac.eval.results import RunResult, Score
    from serac.eval.runner import EvalSettings, Runner, Task, load_task
