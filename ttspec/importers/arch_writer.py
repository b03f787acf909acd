"""The .arch text `ttspec import-hf` writes for a model read from config.json (a Desc): a header of what it
was made from, the sizes as `let`s, one decoder block, and the model around it, wrapped at 100-110 columns."""

from __future__ import annotations

import json
import textwrap

from ..families.hf_config import Desc, periodic, spec_exact, spec_float
from ..inputs import quote
from ..ops.elementwise import GELU, GELU_TANH, RELU, SILU
from . import arch_moe


def _call(prefix: str, name: str, args: list[str], suffix: str = "", width: int = 110) -> list[str]:
    """`prefix name(a, b, ...) suffix`, wrapped after commas with continuation lines aligned."""
    return _wrap(f"{prefix}{name}(", args, ")" + suffix, width)


def _wrap(head: str, items: list[str], tail: str, width: int = 110) -> list[str]:
    """head + items joined by ", " + tail, wrapped after commas, continuation lines under the first item."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else tail)
        if len(line) + len(piece.rstrip()) > width and line != head:
            lines.append(line.rstrip())
            line = " " * len(head) + piece
        else:
            line += piece
    lines.append(line.rstrip())
    return lines


def _summary(desc: Desc) -> str:
    if desc.kv_heads == desc.heads:
        attn = f"{desc.heads} heads"
    elif desc.kv_heads == 1:
        attn = f"MQA {desc.heads} heads"
    else:
        attn = f"GQA {desc.heads}/{desc.kv_heads}"
    if desc.head_dim:
        attn += f" of {desc.head_dim}"
    if desc.qkv_bias and not desc.biased_throughout:
        attn += ", q/k/v biases" if not desc.out_bias else ", attention biases"
    if desc.qk_norm:
        attn += ", q/k RMSNorm" + (" over the projections" if desc.qk_norm_scope == "projection" else "")
    mlp = {SILU.name: "SwiGLU", GELU_TANH.name: "GeGLU (tanh)", GELU.name: "GeGLU", RELU.name: "ReGLU"}[desc.act] \
        if desc.mlp_kind == "glu" else f"{desc.act} MLP"
    parts = [attn, arch_moe.summary(desc) if _sparse(desc) else f"{mlp} {desc.mlp}"]
    if desc.rope:
        r = f"RoPE theta {desc.rope['theta'].removesuffix('.0')}"
        if "fraction" in desc.rope:
            r += f" on {desc.rope['fraction']} of each head"
        if "scaling" in desc.rope:
            r += f" with {desc.rope['scaling'].strip(chr(34))} scaling"
        parts.append(r)
    else:
        parts.append("learned positions")
    windows = {w for w in desc.windows if w is not None}
    if windows:
        parts.append(f"sliding window {', '.join(map(str, sorted(windows)))}"
                     + (" on some layers" if None in desc.windows else ""))
    if desc.attn_softcap or desc.final_softcap:
        parts.append("logit softcapping")
    parts.append(f"{desc.max_seq:,} positions")
    parts.append("tied output head" if desc.tied else "untied output head")
    return ", ".join(parts) + "."


def render(desc: Desc, name: str, source: str, version: str | None, arch_given: bool,
           defaults: list[tuple[str, object]]) -> str:
    """The spec's text: header comments, the sizes, one decoder block, the model."""
    out = _header(desc, name, source, version, arch_given, defaults)
    out += ["", "input tokens: int32[batch, seq] where seq <= max_seq", ""]
    # per-layer variation: the window, and whether a layer has experts (a stack mixing MoE and dense layers)
    period = periodic(_variation(desc)) if _variation(desc) else 1
    out += _decoder(desc, period)
    out += _model(desc, period)
    return "\n".join(out) + "\n"


def _header(desc: Desc, name: str, source: str, version: str | None, arch_given: bool,
            defaults: list[tuple[str, object]]) -> list[str]:
    """What the spec was made from, the model and family lines, and the sizes as `let`s."""
    # the path and the version are outside text: quoted to one line without control characters, so a newline
    # in either cannot end the comment and put text into the spec
    out = [f"# {quote(source.rstrip('/'), limit=300)}: imported by `ttspec import-hf`",
           f"# HF architecture: {desc.hf_class} (model_type {desc.family}"
           + (f", config written by transformers {quote(version, limit=60)})" if version else ")"),
           *textwrap.wrap(_summary(desc), 100, initial_indent="# ", subsequent_indent="# ")]
    if not arch_given:
        out.append("# note: the config names no `architectures`; the class is model_type's")
    for n in desc.notes:
        out += textwrap.wrap(f"note: {n}", 100, initial_indent="# ", subsequent_indent="#   ")
    if defaults:
        listed = ", ".join(f"{k} = {json.dumps(v)}" for k, v in defaults)
        out += textwrap.wrap(f"not in the config, so transformers' defaults: {listed}", 100, initial_indent="# ",
                             subsequent_indent="# ")
    out += [f"model {name}", f"family {desc.family:<17}# parameters load from HF {desc.hf_class} checkpoints", ""]
    lets = [("vocab", desc.vocab), ("d", desc.d), ("layers", desc.layers), ("heads", desc.heads)]
    if desc.kv_heads != desc.heads:
        lets.append(("kv_heads", desc.kv_heads))
    if desc.head_dim:
        lets.append(("head_dim", desc.head_dim))
    lets += ([("mlp", desc.mlp)] if not _sparse(desc) or arch_moe.uses_mlp(desc) else []) + arch_moe.lets(desc)
    lets.append(("max_seq", desc.max_seq))
    out += [f"let {k} = {v}" for k, v in lets]
    out.append(f"let eps = {spec_float(desc.eps)}")
    windows = sorted({w for w in desc.windows if w is not None})
    if windows:
        out.append(f"let sliding_window = {windows[0]}")
    if desc.attn_scale is not None:
        out.append(f"let attn_scale = {spec_exact(desc.attn_scale_from)} ** -0.5     # query_pre_attn_scalar")
    if desc.rope:
        out += _call("let rotary = ", "rope", [f"{k} = {v}" for k, v in desc.rope.items()], width=100)
    return out


def _norm(desc: Desc, x: str, label: str) -> str:
    norm_args = ["eps = eps"] + ([f"offset = {spec_float(desc.norm_offset)}"] if desc.norm_offset else [])
    return f"{desc.norm}({x}, {', '.join(norm_args)}) as {label}"


def _attention_args(desc: Desc, x: str, period: int) -> list[str]:
    args = ["heads = heads"]
    if desc.kv_heads != desc.heads:
        args.append("kv_heads = kv_heads")
    if desc.head_dim:
        args.append("head_dim = head_dim")
    if desc.qkv_bias:
        args.append("qkv_bias = true")
        if not desc.out_bias:
            args.append("out_bias = false")
    if desc.qk_norm:
        args += ["qk_norm = true", "qk_norm_eps = eps"]
        if desc.qk_norm_scope != "head":
            args.append(f'qk_norm_scope = "{desc.qk_norm_scope}"')
    if desc.rope:
        args.append("rope = rotary")
    if period > 1 and len(set(desc.windows[:period])) > 1:
        args.append("window = window")
    elif desc.windows and desc.windows[0] is not None:
        args.append("window = sliding_window")
    if desc.attn_softcap is not None:
        args.append(f"softcap = {spec_float(desc.attn_softcap)}")
    if desc.attn_scale is not None:
        args.append("scale = attn_scale")
    return [x] + args


def _mlp_call(desc: Desc, x: str) -> tuple[str, list[str]]:
    bias = ["bias = true"] if desc.mlp_bias and desc.mlp_kind == "glu" else []
    if desc.mlp_kind == "mlp":
        return "mlp", [x, "hidden = mlp", f'act = "{desc.act}"'] + ([] if desc.mlp_bias else ["bias = false"])
    if desc.act == SILU.name:
        return "swiglu", [x, "hidden = mlp"] + bias
    if desc.act in (GELU.name, GELU_TANH.name):
        return "geglu", [x, "hidden = mlp"] + (["approximate = true"] if desc.act == GELU_TANH.name else []) + bias
    return "glu", [x, "hidden = mlp", f'act = "{desc.act}"'] + bias


def _decoder(desc: Desc, period: int) -> list[str]:
    """The decoder block, under the family's labels (its checkpoint rules map them to HF names)."""
    labels = desc.labels
    params = "x: [batch, seq, d]" + (", window = none" if _windows_vary(desc, period) else "") \
        + (", sparse: bool = true" if arch_moe.mixed(desc) else "")
    out = [f"block decoder({params}) -> [batch, seq, d] kind decoder {{"]
    ind = "    "
    if _sparse(desc):
        return out + _moe_decoder(desc, period) + ["}", ""]
    if desc.residual == "parallel":
        out.append(f"{ind}n = {_norm(desc, 'x', labels[0])}")
        out += _call(f"{ind}return x + ", "attention", _attention_args(desc, "n", period), " as attn")
        name, args = _mlp_call(desc, "n")
        out += _call(f"{ind}         + ", name, args, " as mlp")
    elif desc.residual == "sandwich":
        out += _call(f"{ind}a = ", "attention", _attention_args(desc, _norm(desc, "x", labels[0]), period), " as attn")
        out.append(f"{ind}x = x + {_norm(desc, 'a', 'post_attn_norm')}")
        name, args = _mlp_call(desc, _norm(desc, "x", labels[1]))
        out += _call(f"{ind}m = ", name, args, " as mlp")
        out.append(f"{ind}x = x + {_norm(desc, 'm', 'post_mlp_norm')}")
        out.append(f"{ind}return x")
    else:
        out += _call(f"{ind}x = x + ", "attention", _attention_args(desc, _norm(desc, "x", labels[0]), period),
                     " as attn")
        name, args = _mlp_call(desc, _norm(desc, "x", labels[1]))
        out += _call(f"{ind}x = x + ", name, args, " as mlp")
        out.append(f"{ind}return x")
    return out + ["}", ""]


def _sparse(desc: Desc) -> bool:
    return desc.moe is not None and any(desc.moe.layers)


def _variation(desc: Desc) -> list:
    """What varies per layer: the window, and (in a stack mixing them) MoE or dense."""
    if not arch_moe.mixed(desc):
        return desc.windows
    windows = desc.windows or [None] * desc.layers
    return list(zip(windows, desc.moe.layers))


def _windows_vary(desc: Desc, period: int) -> bool:
    return period > 1 and len(set(desc.windows[:period])) > 1


def _moe_decoder(desc: Desc, period: int) -> list[str]:
    """A sequential pre-norm decoder whose MLP is the `moe` block, or, per layer, the dense SwiGLU."""
    ind = "    "
    out = _call(f"{ind}x = x + ", "attention", _attention_args(desc, _norm(desc, "x", desc.labels[0]), period),
                " as attn")
    name, args, label = arch_moe.call(desc, _norm(desc, "x", desc.labels[1]))
    if not arch_moe.mixed(desc):
        return out + _call(f"{ind}x = x + ", name, args, f" as {label}") + [f"{ind}return x"]
    dense, dense_args = _mlp_call(desc, _norm(desc, "x", desc.labels[1]))
    out.append(f"{ind}if sparse {{")
    out += _call(f"{ind * 2}x = x + ", name, args, f" as {label}")
    out.append(f"{ind}}} else {{")
    out += _call(f"{ind * 2}x = x + ", dense, dense_args, " as mlp")
    return out + [f"{ind}}}", f"{ind}return x"]


def _layer_index(desc: Desc, period: int) -> str:
    """`layer % p`, which survives a change of `layers`, when the pattern repeats within the stack or is the
    family's periodic rule (a 2-layer Gemma 2); `layer` for a pattern as long as the stack, one value a layer."""
    if period < desc.layers or desc.window_period == period:
        return f"layer % {period}"
    return "layer"


def _repeat_args(desc: Desc, period: int) -> list[str]:
    """The repeat's per-layer arguments: `window = [...][layer % p]`, `sparse = [...][layer % p]`."""
    index = _layer_index(desc, period)
    out = []
    if _windows_vary(desc, period):
        values = ["sliding_window" if w is not None else "none" for w in desc.windows[:period]]
        out.append("window = [" + ", ".join(values) + f"][{index}]")
    if arch_moe.mixed(desc):
        out.append("sparse = [" + ", ".join("true" if m else "false" for m in desc.moe.layers[:period]) + f"][{index}]")
    return out


def _model(desc: Desc, period: int) -> list[str]:
    """Embedding, the repeated decoder, the final norm and the output head."""
    labels = desc.labels
    embed = f"h = token_embedding(tokens, vocab, d) as {labels[2]}"
    if desc.embed_scale:
        embed += " * d ** 0.5"
    out = [embed]
    if desc.learned_positions:
        out.append("h = learned_positions(h, max_seq) as wpe")
    if period > 1 and arch_moe.mixed(desc):
        out += _wrap("h = repeat(layers) decoder(", ["h", *_repeat_args(desc, period)], ") as layers")
    elif period > 1:
        values = ["sliding_window" if w is not None else "none" for w in desc.windows[:period]]
        index = _layer_index(desc, period)
        out += _wrap("h = repeat(layers) decoder(h, window = [", values, f"][{index}]) as layers")
    else:
        out.append("h = repeat(layers) decoder(h) as layers")
    out.append(f"h = {_norm(desc, 'h', labels[3])}")
    head_args = ["h", "vocab"] + ([f"tied = {labels[2]}"] if desc.tied else []) + (
        ["bias = true"] if desc.head_bias else [])
    head = f"lm_head({', '.join(head_args)})"
    if desc.final_softcap is not None:
        head = f"softcap({head}, {spec_float(desc.final_softcap)})"
    out.append(f"output logits = {head}")
    return out
