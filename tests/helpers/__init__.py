"""Helpers the tests share: fake data files in the real formats, tiny runs, the workflow in a
temporary copy. No test module imports another."""
