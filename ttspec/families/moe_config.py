"""Mixtures of experts in HF configs and checkpoints, shared by the MoE families (mixtral, qwen2_moe,
qwen3_moe, olmoe): the expert fields of config.json (each checked and located), which layers are sparse,
and the checkpoint rules of the stdlib's `moe` block in both of HF's layouts: the hub files' one tensor
per expert (`experts.N.w1.weight` / `experts.N.gate_proj.weight`, what save_pretrained writes) and
transformers 5's fused 3-D tensors in memory (`experts.gate_up_proj` [E, 2I, d], gate rows then up
rows; `experts.down_proj` [E, d, I]).

The spec labels the block `moe` and a dense layer's MLP `mlp`: `layers.N.moe.router.weight` [E, d],
`layers.N.moe.experts.{w1,w3}` [E, I, d], `layers.N.moe.experts.w2` [E, d, I], and Qwen-MoE's
`layers.N.moe.shared_expert.{w1,w3,w2}.weight` and `layers.N.moe.shared_expert_gate.weight` [1, d]."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checkpoints import L, Rule, fused, one

if TYPE_CHECKING:
    from .hf_config import Config, Desc

MOE_LABEL = "moe"  # the decoder's label of its `moe` block
_M = L + MOE_LABEL + r"\."

# Fields of the MoE config classes that only training reads (the auxiliary loss, router logits returned for
# it, Mixtral's multiplicative router jitter, applied only while training): no effect on a forward pass.
TRAINING_ONLY = ("output_router_logits", "router_aux_loss_coef", "router_jitter_noise")


def moe_rules(hf_block: str, gate: str, up: str, down: str) -> tuple[Rule, ...]:
    """The hub layout: `model.layers.N.<hf_block>.gate.weight` routes, experts.{expert}.<gate|up|down>.weight."""
    base = "model.layers.{0}." + hf_block
    return (
        one(_M + r"router\.weight", base + ".gate.weight"),
        one(_M + r"experts\.w1", base + ".experts.{expert}." + gate + ".weight"),
        one(_M + r"experts\.w3", base + ".experts.{expert}." + up + ".weight"),
        one(_M + r"experts\.w2", base + ".experts.{expert}." + down + ".weight"),
    )


def fused_moe_rules() -> tuple[Rule, ...]:
    """transformers 5's layout in memory (every MoE family: the block is `mlp`)."""
    base = "model.layers.{0}.mlp"
    return (
        one(_M + r"router\.weight", base + ".gate.weight"),
        fused((_M + r"experts\.w1", _M + r"experts\.w3"), base + ".experts.gate_up_proj", axis=1),
        one(_M + r"experts\.w2", base + ".experts.down_proj"),
    )


SHARED_RULES = (  # Qwen-MoE's shared expert and its gate: one name in both layouts
    one(_M + r"shared_expert\.w1\.weight", "model.layers.{0}.mlp.shared_expert.gate_proj.weight"),
    one(_M + r"shared_expert\.w3\.weight", "model.layers.{0}.mlp.shared_expert.up_proj.weight"),
    one(_M + r"shared_expert\.w2\.weight", "model.layers.{0}.mlp.shared_expert.down_proj.weight"),
    one(_M + r"shared_expert_gate\.weight", "model.layers.{0}.mlp.shared_expert_gate.weight"),
)


def read_experts(cfg: Config, key: str, default: int, alias: str) -> int:
    """The expert count: `key`, or `alias` (transformers' attribute_map spells it both ways; 5.x saves the
    alias for qwen3_moe); both present must agree."""
    value = cfg.get(key, "int", None, null=None, note_default=False)
    other = cfg.get(alias, "int", None, null=None, note_default=False)
    if value is not None and other is not None and value != other:
        raise cfg.error(alias, f"`{alias}` = {other} and `{key}` = {value} disagree",
                        hint="transformers reads them as one field (the number of experts): keep one")
    if value is None and other is None:
        cfg.defaults.append((key, default))
        return default
    return value if value is not None else other


def read_routing(cfg: Config, experts: int, top_k_default: int) -> int:
    top_k = cfg.get("num_experts_per_tok", "int", top_k_default, note_default=experts > 0)
    if top_k > experts > 0:  # no experts (Qwen-MoE's num_experts 0): every layer dense, top_k unused
        raise cfg.error("num_experts_per_tok", f"num_experts_per_tok = {top_k} is more than the {experts} experts",
                        hint="each token chooses top_k of the experts: top_k <= the number of experts")
    for key in TRAINING_ONLY:
        cfg.get(key, "float" if key != "output_router_logits" else "bool", None, null=None, note_default=False)
    return top_k


def sparse_layers(cfg: Config, layers: int, experts: int) -> list[bool]:
    """Qwen-MoE's rule: layer i has experts unless listed in mlp_only_layers, when num_experts > 0 and
    (i + 1) % decoder_sparse_step == 0."""
    step = cfg.get("decoder_sparse_step", "int", 1, note_default=False)
    only = cfg.get("mlp_only_layers", "list", [], null=[], note_default=False)
    for i, value in enumerate(only):
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < layers):
            raise cfg.error("mlp_only_layers", f"mlp_only_layers[{i}] = {value!r} is not a layer index (0 to "
                                               f"{layers - 1})", hint="list the dense layers by index")
    dense = set(only)
    return [i not in dense and experts > 0 and (i + 1) % step == 0 for i in range(layers)]


def set_moe(desc: Desc, experts: int, top_k: int, hidden: int, normalize: bool, layers: list[bool],
            shared: int | None = None, shared_gate: bool = False) -> None:
    from .hf_config import MoeDesc  # on use: the core never loads it

    desc.moe = MoeDesc(experts, top_k, hidden, normalize, layers, shared, shared_gate)
