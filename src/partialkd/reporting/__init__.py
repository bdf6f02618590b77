"""Scores, tables, the figure style and the generated document."""
