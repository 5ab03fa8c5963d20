"""Editing methods other than serac (the baselines the literature compares it with), written here from
their papers, one module or folder each; the evaluation harness registers them in
:data:`serac.eval.methods.METHODS`.
"""
