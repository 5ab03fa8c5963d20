"""Editing methods other than serac (the baselines the literature compares it with), one folder each."""
