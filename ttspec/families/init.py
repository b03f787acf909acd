"""How a family initialises a fresh model, as HF transformers' `_init_weights` of its class does: every
weight matrix, embedding table, router and bank of experts from normal(0, std), biases 0, norms scaling
by 1 (what each parameter is comes from its op: ttspec/ops/registry.py ParamInit). GPT-2 also scales the
projections that write into the residual stream (attention's output projection and the MLP's down
projection, HF's `c_proj`) by 1/sqrt(2 * layers), the GPT-2 paper's scheme (nanoGPT does the same).

A spec without a family is trained from scratch by definition (no checkpoint fixes its layout), so it gets
GPT-2's rule with the residual scaling: each of the 2 * layers branches adds its output into the residual
stream, and scaling them keeps that stream's variance at the embedding's order however deep the model is
(nanoGPT's choice for models of the lesson's size)."""

from __future__ import annotations

from typing import NamedTuple

# HF's initializer_range, the same default in every family's config class ttspec reads
INITIALIZER_RANGE = 0.02


class InitRule(NamedTuple):
    """normal(0, std) for weight matrices and tables; the residual projections at std / sqrt(2 * layers)
    when `residual_scaled`. `source`: where the rule comes from, as the generated program says."""

    source: str
    std: float = INITIALIZER_RANGE
    residual_scaled: bool = False

    def output_std(self, layers: int) -> float:
        """The std of a projection into the residual stream of a model with `layers` layers."""
        if not self.residual_scaled or layers <= 0:
            return self.std
        return self.std / (2 * layers) ** 0.5


HF_INIT = InitRule("HF transformers' _init_weights: normal(0, 0.02), biases 0, norms 1")
GPT2_INIT = InitRule("HF GPT2PreTrainedModel._init_weights: normal(0, 0.02), residual projections "
                     "0.02/sqrt(2*layers), biases 0, norms 1", residual_scaled=True)
DEFAULT_INIT = InitRule("no family: GPT-2's rule (nanoGPT's), normal(0, 0.02), residual projections "
                        "0.02/sqrt(2*layers), biases 0, norms 1", residual_scaled=True)
