"""Former name of :mod:`metarec.experiments.grid_study`; kept so that old imports still work.

Chapters 8 and 10 import :data:`SUPPORT_SIZES`, :func:`evaluate_groups` and
:func:`sweep_cells` from here. New code imports them from :mod:`metarec.experiments`.
"""

from metarec.experiments.grid_study import output_paths, run_grid, sweep_cells
from metarec.experiments.store import write_frame
from metarec.experiments.training import SUPPORT_SIZES, evaluate_groups

__all__ = ["SUPPORT_SIZES", "evaluate_groups", "output_paths", "run_grid", "sweep_cells",
           "write_frame"]
