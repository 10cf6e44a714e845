"""metarec: meta-learning for recommender systems in TensorFlow 2 / Keras 3.

Importing :mod:`metarec` quietens TensorFlow's C++ log lines (``TF_CPP_MIN_LOG_LEVEL=2``)
before TensorFlow is first imported, so notebooks and scripts show results, not log noise.
The subpackages are imported lazily: ``metarec.data`` needs only numpy and pandas.
"""

from __future__ import annotations

import importlib
import os

# Must happen before TensorFlow is imported anywhere; setdefault keeps a user's own choice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_SUBMODULES = ("data", "metrics", "models", "meta", "plotting", "experiments")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"metarec.{name}")
    raise AttributeError(f"module 'metarec' has no attribute {name!r}")
