"""Every test under tests/workflow/ runs Snakemake or DVC in subprocesses on a copy of the
repository's workflow (tests/helpers/workflow_copy.py) and carries the `workflow` marker:
`pytest -m "not workflow"` runs the unit tests alone."""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.workflow)
