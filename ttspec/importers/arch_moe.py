"""The mixture-of-experts parts of the .arch text `import-hf` writes (arch_writer): the sizes, the `moe`
call under the label the family's checkpoint rules expect (families/moe_config.py), and the per-layer
choice between it and the dense MLP for stacks that mix them (Qwen-MoE's decoder_sparse_step and
mlp_only_layers)."""

from __future__ import annotations

from ..families.hf_config import Desc
from ..families.moe_config import MOE_LABEL
from ..ops.elementwise import SILU


def mixed(desc: Desc) -> bool:
    """Whether the stack mixes MoE and dense layers (the decoder then takes a per-layer `moe` argument)."""
    return desc.moe is not None and len(set(desc.moe.layers)) > 1


def any_dense(desc: Desc) -> bool:
    return desc.moe is None or not all(desc.moe.layers)


def lets(desc: Desc) -> list[tuple[str, int]]:
    """The expert sizes as `let`s: the count, top_k, each expert's width (when not the dense `mlp`), the shared one."""
    moe = desc.moe
    if moe is None or not any(moe.layers):
        return []
    out = [("experts", moe.experts), ("top_k", moe.top_k)]
    if moe.hidden != desc.mlp:
        out.append(("expert_mlp", moe.hidden))
    if moe.shared is not None:
        out.append(("shared_mlp", moe.shared))
    return out


def uses_mlp(desc: Desc) -> bool:
    """Whether the dense width `mlp` appears in the spec (a dense layer, or experts of that width)."""
    return any_dense(desc) or desc.moe.hidden == desc.mlp


def call(desc: Desc, x: str) -> tuple[str, list[str], str]:
    """(name, args, label) of the MoE block on `x`."""
    moe = desc.moe
    args = [x, "experts = experts", "top_k = top_k", "hidden = " + ("mlp" if moe.hidden == desc.mlp else "expert_mlp")]
    if desc.act != SILU.name:  # every expert (and the shared one) gated by the config's activation
        args.append(f'act = "{desc.act}"')
    if moe.normalize:
        args.append("normalize = true")
    if moe.shared is not None:
        args.append("shared = shared_mlp")
        if moe.shared_gate:
            args.append("shared_gate = true")
    return "moe", args, MOE_LABEL


def summary(desc: Desc) -> str:
    moe = desc.moe
    text = f"{moe.experts} experts, top {moe.top_k}" + (" renormalised" if moe.normalize else "") + \
        f", each a {_glu(desc)} {moe.hidden}"
    if moe.shared is not None:
        text += f", a shared {_glu(desc)} expert {moe.shared}" + (" behind a sigmoid gate" if moe.shared_gate else "")
    if mixed(desc):
        dense = sum(not m for m in moe.layers)
        text += f"; {dense} dense layer(s) with {_glu(desc)} {desc.mlp}"
    return text


def _glu(desc: Desc) -> str:
    return "SwiGLU" if desc.act == SILU.name else f"{desc.act} GLU"
