"""Model names -> classes, imported on demand."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry is read by the CLI at start-up: no torch import here
    from shopgraph.gnn.base import EmbeddingModel

MODELS: dict[str, tuple[str, str, str]] = {
    "lightgcn": ("lightgcn", "LightGCN", "LightGCN (He et al. 2020), BPR-trained"),
    "graphsage": ("graphsage", "GraphSAGE", "GraphSAGE (Hamilton et al. 2017) with item "
                  "features, BPR-trained"),
    "spectral": ("spectral", "SpectralFilter", "closed-form low-pass graph filter (no training "
                 "loop; fastest on a CPU)"),
}


def model_class(name: str) -> type[EmbeddingModel]:
    """The class of model ``name``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    module, cls, _ = MODELS[name]
    model: type[EmbeddingModel] = getattr(importlib.import_module(f"shopgraph.gnn.{module}"), cls)
    return model
