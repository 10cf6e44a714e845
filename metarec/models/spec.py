"""A :class:`metarec.data.FeatureSpec` inside Keras model configs (``get_config``/``from_config``).

``FeatureSpec`` itself lives in :mod:`metarec.data.features` (import it from
:mod:`metarec.data`); this module only converts it for Keras's serialisation.
"""

from __future__ import annotations

from typing import Any

from metarec.data.features import FeatureSpec

__all__ = ["spec_to_config", "spec_from_config"]


def spec_to_config(spec: FeatureSpec) -> dict[str, Any]:
    """A JSON-able dict of the spec's fields (for ``get_config``): :meth:`FeatureSpec.to_dict`."""
    return spec.to_dict()


def spec_from_config(config: dict[str, Any] | FeatureSpec) -> FeatureSpec:
    """Inverse of :func:`spec_to_config`; passes a ``FeatureSpec`` through unchanged."""
    if isinstance(config, FeatureSpec):
        return config
    return FeatureSpec.from_dict(config)
