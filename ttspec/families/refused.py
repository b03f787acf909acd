"""HF model types ttspec knows it cannot express yet, by the feature they need: `import-hf` and a
checkpoint's model_type refuse them naming that feature rather than as unknown."""

# model_type -> the missing feature, as "needs ..." completes it
MISSING_FEATURES = {
    "deepseek_v2": "multi-head latent attention (MLA) and grouped top-k routing",
    "deepseek_v3": "multi-head latent attention (MLA) and sigmoid, bias-corrected group routing",
    "deepseek_v32": "multi-head latent attention (MLA) with sparse attention",
    "gpt_oss": "attention sinks and the clamped SwiGLU experts (with biases) of gpt-oss",
    "llama4": "Llama 4's interleaved chunked attention without RoPE, sigmoid routing with a shared expert, and "
              "its vision tower",
    "llama4_text": "Llama 4's interleaved chunked attention without RoPE and sigmoid routing with a shared expert",
    "qwen3_next": "gated delta-net linear attention and gated attention",
    "phimoe": "Phi-MoE's sparsemixer routing",
    "dbrx": "q, k and v clamped to clip_qkv",
    "jamba": "Mamba state-space layers",
    "granitemoe": "Granite's scaled residuals, embeddings and logits",
}


def refusal(model_type: str) -> str | None:
    """`model_type X needs ..., which ttspec cannot express yet`, or None for a type not listed."""
    feature = MISSING_FEATURES.get(model_type)
    if feature is None:
        return None
    return f"model_type {model_type} needs {feature}, which ttspec cannot express yet"
