"""The op registry: everything ttspec knows about each primitive op, one module per op group.

Importing this package registers every op. Passes, reports and backends look ops up in
REGISTRY (or compare with the OpDef constants below); no other module names an op.
"""

from __future__ import annotations

from .attention import (
    APPLY_ROPE,
    ATTEND,
    MERGE_HEADS,
    QKV_PART,
    ROPE,
    ROPE_SCALINGS,
    ROPE_STYLES,
    SPLIT_HEADS,
    SPLIT_QKV_HEADS,
    rotary_dims,
)
from .collectives import ALL_GATHER, ALL_REDUCE, COLLECTIVES, MESH_PARTITION, REDUCE_SCATTER
from .elementwise import ACTIVATIONS, ADD, GELU, GELU_TANH, MUL, RELU, SCALE, SILU, SOFTCAP, same_layout
from .embeddings import EMBEDDING, POSITION_EMBEDDING, SINUSOIDAL_POSITIONS
from .experts import EXPERT_GLU, SIGMOID, TOPK_ROUTING, active_fraction
from .linear import LINEAR, TIED_LINEAR, FusedPart, FusedQKV
from .norms import LAYER_NORM, RMS_NORM
from .queries import input_vocabulary, ops_feeding_output
from .registry import (
    CONFIGS,
    REGISTRY,
    REQUIRED,
    ArgSpec,
    Config,
    ConfigDef,
    OpDef,
    OpError,
    ParamRef,
    ParamSpec,
    ShapeContext,
    Storage,
    Unsupported,
)

__all__ = [
    "ACTIVATIONS", "ADD", "ALL_GATHER", "ALL_REDUCE", "APPLY_ROPE", "ATTEND", "COLLECTIVES", "CONFIGS", "EMBEDDING",
    "EXPERT_GLU", "SIGMOID", "TOPK_ROUTING", "active_fraction",
    "GELU", "GELU_TANH", "LAYER_NORM", "LINEAR", "MERGE_HEADS", "MESH_PARTITION", "MUL", "POSITION_EMBEDDING",
    "QKV_PART", "REDUCE_SCATTER", "REGISTRY", "RELU", "REQUIRED", "RMS_NORM", "ROPE", "ROPE_SCALINGS", "ROPE_STYLES",
    "SCALE", "SILU", "SINUSOIDAL_POSITIONS", "SOFTCAP", "SPLIT_HEADS", "SPLIT_QKV_HEADS", "TIED_LINEAR", "ArgSpec",
    "Config",
    "ConfigDef", "FusedPart", "FusedQKV", "OpDef", "OpError", "ParamRef", "ParamSpec", "ShapeContext", "Storage",
    "Unsupported", "input_vocabulary", "ops_feeding_output",
    "rotary_dims", "same_layout",
]
