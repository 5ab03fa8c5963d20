"""Editing baselines from the literature, written here from their papers, one module per method.

Each module holds the model-level editor and its :class:`~serac.eval.methods.EditingMethod`; the
evaluation harness registers them in :data:`serac.eval.methods.METHODS`.
"""
