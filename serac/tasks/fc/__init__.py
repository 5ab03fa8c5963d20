"""Fact-checking (VitaminC) editing: evidence as edits, a claim classifier as the base model."""
