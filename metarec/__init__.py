"""metarec: meta-learning for recommender systems in TensorFlow 2 / Keras 3.

Importing :mod:`metarec` quietens TensorFlow's C++ log lines (``TF_CPP_MIN_LOG_LEVEL=2``)
before TensorFlow is first imported, so notebooks and scripts show results, not log noise.
Import it before ``tensorflow``: the variable is read once, when TensorFlow loads.

Nothing heavy is imported with the package itself. Each part is imported on first use, as an
attribute (``metarec.distribute``) or with ``import metarec.distribute``:

- :mod:`metarec.data`: datasets, features, cold-start splits, few-shot tasks (numpy, pandas);
- :mod:`metarec.metrics`: MAE, RMSE, nDCG on padded task batches;
- :mod:`metarec.models`: the Keras base recommenders;
- :mod:`metarec.meta`: the meta-learners (MAML, Reptile, Meta-SGD, MeLU, fine-tuning);
- :mod:`metarec.distribute`: ``tf.distribute`` strategies and the distributed input pipeline;
- :mod:`metarec.experiments`: benchmarks, tuning and the studies of the book;
- :mod:`metarec.evidence`: which items to ask a new user about (MeLU's evidence scores);
- ``metarec.train``: ``python -m metarec train`` (one method, one device or a strategy);
- :mod:`metarec.plotting`: the book's matplotlib figures;
- ``metarec.cli``: the command line, ``python -m metarec --help``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

# Must happen before TensorFlow is imported anywhere; setdefault keeps a user's own choice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

#: The parts reachable as attributes, imported on first access (PEP 562): ``import metarec``
#: stays instant and TensorFlow-free, so the command line answers ``--help`` at once.
_SUBMODULES = ("data", "metrics", "models", "meta", "distribute", "experiments", "evidence",
               "train", "plotting", "cli")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        # import_module also binds the attribute on this package, so this runs once per name.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})
