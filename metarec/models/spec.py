"""Serialisation of a :class:`metarec.data.FeatureSpec` inside Keras model configs."""

from __future__ import annotations

import dataclasses
from typing import Any

from metarec.data.features import FeatureSpec

__all__ = ["FeatureSpec", "spec_to_config", "spec_from_config"]


def spec_to_config(spec: FeatureSpec) -> dict[str, Any]:
    """A JSON-able dict of the spec's fields (for ``get_config``)."""
    return {k: (list(v) if isinstance(v, (list, tuple)) else v)
            for k, v in dataclasses.asdict(spec).items()}


def spec_from_config(config: dict[str, Any] | FeatureSpec) -> FeatureSpec:
    """Inverse of :func:`spec_to_config`; passes a ``FeatureSpec`` through unchanged."""
    if isinstance(config, FeatureSpec):
        return config
    return FeatureSpec(**config)
