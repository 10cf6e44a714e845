"""Fixtures of the fair-grid tests (``test_fair.py``, ``test_fair_tuning.py``,
``test_references.py``): a small synthetic split, and the grid's epoch cap lowered for speed."""

from __future__ import annotations

import pytest

from metarec.data import make_synthetic
from metarec.experiments import grid as grid_module
from metarec.experiments import prepare

#: The size of the synthetic data the fair-grid tests train on.
FAIR_SMALL = {"n_users": 300, "n_items": 200}


@pytest.fixture(scope="module")
def data():
    """Seed 0's prepared split of the small synthetic data (one per test module)."""
    return prepare(make_synthetic(seed=0, **FAIR_SMALL), seed=0)


@pytest.fixture
def few_grid_epochs(monkeypatch):
    """The protocol's 30 epochs are for the book; 2 keep these tests at seconds. A module asks
    for it with ``pytestmark = pytest.mark.usefixtures("few_grid_epochs")``."""
    monkeypatch.setattr(grid_module, "MAX_EPOCHS", 2)
