"""`ttspec import-hf`: a Hugging Face model directory (or its config.json) -> a readable .arch spec.

The common mapper: each family's module (ttspec.families) reads the fields its transformers class reads;
this module checks what every family shares, refuses what is left over, and has the spec written
(arch_writer) and compiled before anyone sees it.

The config is read with `json` alone (no torch, no transformers). Each supported `model_type`
(llama, mistral, qwen2, qwen3, gemma, gemma2, phi, phi3, gpt2, and the mixtures of experts mixtral,
qwen2_moe, qwen3_moe, olmoe) has a reader that knows the
fields transformers' class for it reads, in the 4.x and the 5.x spellings, and what they mean.

The rule for fields (docs/importing-hf.md):
- a field the family's transformers class reads is mapped into the spec, or, when its value asks
  for something ttspec cannot express (a `longrope` rope type, `qk_layernorm: true`, ...), it is
  an error naming the field, its file and line;
- a field that cannot change the logits of a forward pass (token ids, dtypes, dropout rates,
  initialisation, cache and generation settings, HF bookkeeping, any `_private` key) is ignored
  by an explicit allow-list (IGNORED below);
- a field another family reads but this one does not (Phi-3-mini's `attention_bias: false`) is
  accepted when its value agrees with what this family computes, and is an error otherwise;
- anything else is unknown, and unknown may be semantic: an error naming the field, unless the
  user vouches for it with `--ignore FIELD`.
Fields that are absent take the defaults of transformers' (5.x) config class for the family,
listed in the spec's header. The sizes (vocab, width, layers, heads, MLP width, positions) have
no useful default and are required.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchError, Loc, SourceCache, UsageError
from ..families import FAMILIES
from ..families.hf_config import Config, Desc, check_values, shown
from ..families.llama_like import LlamaLike
from ..families.refused import refusal
from ..inputs import MAX_TOKENIZER_BYTES, parse_json, quote, read_text
from .arch_writer import render

# Fields that cannot change the logits of one forward pass, whatever their value.
IGNORED = frozenset({
    # bookkeeping
    "architectures", "model_type", "transformers_version", "auto_map", "torch_dtype", "dtype", "use_bfloat16",
    "torchscript", "tokenizer_class", "prefix", "task_specific_params", "finetuning_task", "id2label", "label2id",
    "num_labels", "problem_type", "output_attentions", "output_hidden_states", "return_dict", "use_return_dict",
    "tf_legacy_loss", "chunk_size_feed_forward", "is_decoder", "tie_encoder_decoder",
    # token ids
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    "forced_bos_token_id", "forced_eos_token_id",
    # training: initialisation, dropout, tensor-parallel slicing that computes the same product
    "initializer_range", "attention_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "hidden_dropout",
    "summary_first_dropout", "pretraining_tp",
    # inference cache and generation
    "use_cache", "cache_implementation", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
    "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p", "repetition_penalty",
    "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
    "num_return_sequences", "output_scores", "return_dict_in_generate", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
})

# Fields some transformers classes read, with the value that means "as this family computes";
# a family that does not read one accepts exactly that value (and null / absent).
NEUTRAL = {
    "attention_bias": False, "mlp_bias": False, "qk_layernorm": False, "use_sliding_window": False,
    "use_mrope": False, "use_bidirectional_attention": False, "is_encoder_decoder": False,
    "add_cross_attention": False, "cross_attention_hidden_size": None, "pruned_heads": {},
    "partial_rotary_factor": 1.0, "attn_logit_softcapping": None, "final_logit_softcapping": None,
    "sliding_window": None, "layer_types": None, "quantization_config": None,
    "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
}


KEYWORDS = {"model", "let", "input", "output", "block", "kind", "return", "if", "else", "import", "repeat", "as",
            "where", "true", "false", "none", "and", "or", "not", "family", "target", "shard", "layer"}
MAX_NAME = 40


MAX_SHARDS_LISTED = 8  # weight files named in the header; the rest are counted


@dataclass
class Imported:
    """The spec text and what it was made from."""

    text: str
    name: str
    family: str
    hf_class: str
    config_path: Path


def locate(path: str | Path) -> tuple[Path, Path | None]:
    """(config.json, model directory or None) for a model directory or a config.json path."""
    p = Path(path)
    if p.is_dir():
        config = p / "config.json"
        if not (config.exists() or config.is_symlink()):  # anything else there is refused by the reader, by kind
            raise ArchError(f"{quote(p)} has no config.json",
                            hint="import-hf takes a Hugging Face model directory (config.json, *.safetensors, "
                                 "tokenizer.json) or a config.json file")
        return config, p
    if not (p.exists() or p.is_symlink()):
        raise ArchError(f"no such file or directory: {quote(p)}")
    return p, None


def _check_leftovers(cfg: Config, family: str) -> None:
    """Every field is mapped, ignorable, neutral-valued, or vouched for; else an error naming it."""
    for key, value in cfg.data.items():
        if key in cfg.used or key in IGNORED or key.startswith("_"):
            continue
        if key in NEUTRAL:  # known to change the computation: --ignore does not apply
            if value is None or value == NEUTRAL[key]:
                continue
            hf_class = FAMILIES[family].hf_class
            raise cfg.error(key, f"`{key}: {shown(value)}` is not something {hf_class} computes, "
                                 f"and ttspec cannot express it for model_type {family}",
                            hint=f"{hf_class} has no such setting; check the config's model_type")
        if key in cfg.ignore:
            continue
        raise cfg.error(key, f"unknown field `{quote(key, limit=80)}` in config.json for model_type {family}: "
                             "ttspec cannot tell whether it changes the computation",
                        hint="if it does not (an id, a training or generation setting), pass "
                             f"`--ignore {quote(key, limit=80)}`")


def model_name(text: str, fallback: str) -> str:
    """A valid ttspec identifier from a directory name: Qwen2.5-0.5B -> qwen2_5_0_5b."""
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or fallback
    if name[0].isdigit():
        name = "m_" + name
    if name in KEYWORDS or keyword.iskeyword(name):
        name += "_model"
    return name[:MAX_NAME].rstrip("_")


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in KEYWORDS or keyword.iskeyword(name) \
            or len(name) > MAX_NAME:
        raise UsageError(f"--name {name!r} is not a valid model name",
                         hint=f"a name is letters, digits and `_`, not starting with a digit, at most {MAX_NAME} "
                              "characters, and not a keyword")
    return name


def _model_types() -> list[str]:
    """The model types import-hf takes, as its messages have always listed them: the llama-like families
    (whose reader is a LlamaLike's) first, then the others, each group in the registry's order."""
    return sorted(FAMILIES, key=lambda name: not isinstance(getattr(FAMILIES[name].read, "__self__", None), LlamaLike))


def import_hf(path: str | Path, name: str | None = None, ignore: tuple[str, ...] = ()) -> Imported:
    config_path, directory = locate(path)
    cfg = Config(config_path, tuple(ignore))
    if not cfg.has("model_type"):
        raise ArchError(f"{cfg.name} has no `model_type`, which names the model's family",
                        hint="supported model types: " + ", ".join(_model_types()))
    model_type = cfg.get("model_type", "str")
    missing = refusal(model_type)
    if missing is not None:
        raise cfg.error("model_type", missing, hint="ttspec imports " + ", ".join(_model_types()))
    if model_type not in FAMILIES:
        raise cfg.error("model_type", f"model_type `{quote(model_type, limit=80)}` is not a family ttspec imports",
                        hint="supported: " + ", ".join(_model_types()))
    family = FAMILIES[model_type]
    hf_class = family.hf_class
    archs = cfg.data.get("architectures")
    if archs is not None:
        if not (isinstance(archs, list) and len(archs) == 1 and isinstance(archs[0], str)):
            raise cfg.error("architectures", f"`architectures` should name one class, got {shown(archs)}")
        if archs[0] != hf_class:
            raise cfg.error("architectures", f"architecture `{quote(archs[0], limit=80)}` is not one ttspec imports "
                                             f"for model_type {model_type}",
                            hint=f"ttspec imports {hf_class} (a causal LM with its output head)")
    desc = family.read(cfg)
    check_values(cfg, desc, family.eps_key)
    if cfg.get("is_encoder_decoder", "bool", False, null=False, note_default=False) \
            or cfg.get("add_cross_attention", "bool", False, null=False, note_default=False):
        key = "is_encoder_decoder" if cfg.data.get("is_encoder_decoder") else "add_cross_attention"
        raise cfg.error(key, f"`{key}: true`: cross-attention cannot be expressed in ttspec")
    if cfg.has("quantization_config"):
        raise cfg.error("quantization_config", "a quantized checkpoint (quantization_config) cannot be imported",
                        hint="import the unquantized model; ttspec chooses device weight dtypes itself "
                             "(--weights-dtype)")
    if family.refuse is not None:
        family.refuse(cfg)
    if cfg.data.get("pruned_heads"):
        raise cfg.error("pruned_heads", "pruned attention heads cannot be expressed in ttspec")
    cfg.used |= {"pruned_heads", "quantization_config"}
    _check_leftovers(cfg, model_type)
    version = cfg.data.get("transformers_version")
    source = str(path)
    if directory is not None:
        label = directory.resolve().name
    else:
        label = config_path.resolve().parent.name
    name = check_name(name) if name else model_name(label, model_type)
    defaults = [(k, v) for k, v in cfg.defaults]
    text = render(desc, name, source, version if isinstance(version, str) else None, archs is not None, defaults)
    if directory is not None:
        text = _with_directory_notes(text, directory, desc)
    _check_spec(cfg, text)
    return Imported(text, name, model_type, hf_class, config_path)


def _check_spec(cfg: Config, text: str) -> None:
    """The spec made, through `ttspec check`'s own steps before it is written or printed. Every value was
    checked at its config field above; this catches a rule of the compiler those checks do not know
    yet, and reports it against config.json (the user's file), never against a spec nobody wrote."""
    from ..driver import verify
    from ..elaborate import elaborate
    from ..families import check_family_labels
    from ..frontend.parser import parse_source

    name = "<the spec imported from config.json>"
    try:
        model = elaborate(parse_source(text, name), cfg.path.resolve().parent, FAMILIES)
        verify(model)
        check_family_labels(model)
    except ArchError as e:
        line = ""
        if e.loc is not None and e.loc.file == name:
            line = f" (spec line {e.loc.line}: `{text.split(chr(10))[e.loc.line - 1].strip()}`)"
        raise ArchError(f"ttspec cannot compile the spec this config makes: {e.diagnostic.message}{line}",
                        Loc(cfg.name, 1, 1), hint="one of the config's values is outside what ttspec compiles, "
                                                  "and import-hf does not check it by field yet: please report it, "
                                                  "with this config") from None


def _with_directory_notes(text: str, directory: Path, desc: Desc) -> str:
    """What the directory holds besides config.json, as header comments: weights, tokenizer size."""
    notes = []
    index = directory / "model.safetensors.index.json"
    shards = sorted(p.name for p in directory.glob("*.safetensors"))
    if index.is_file():
        notes.append(f"weights: model.safetensors.index.json ({len(shards)} shards)")
    elif shards:  # file names are outside text: quoted, and a few named (the header stays a few lines)
        listed = [quote(s, limit=100) for s in shards[:MAX_SHARDS_LISTED]]
        more = len(shards) - len(listed)
        notes.append("weights: " + ", ".join(listed) + (f" and {more:,} more" if more else ""))
    tokens = _tokenizer_size(directory / "tokenizer.json")
    if tokens is not None:
        extra = "" if tokens == desc.vocab else f" for an embedding of {desc.vocab:,} rows"
        if tokens > desc.vocab:
            extra += " (ids past the embedding would fail)"
        notes.append(f"tokenizer.json: {tokens:,} token ids{extra}")
    if not notes:
        return text
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("model "))
    return "\n".join(lines[:at] + [f"# {n}" for n in notes] + lines[at:])


def _tokenizer_size(path: Path) -> int | None:
    """1 + the largest token id in a tokenizers JSON file (vocabulary and added tokens), or None when there
    is no tokenizer.json or it lists no ids. One that is there is read as every file from outside is
    (inputs.py: a regular file, size-limited, bounded JSON), so a FIFO, a dangling link or JSON nested
    100,000 deep is refused with a message."""
    if not (path.exists() or path.is_symlink()):
        return None
    name, text = quote(path, limit=4096), read_text(path, "tokenizer.json", MAX_TOKENIZER_BYTES)
    try:
        data = parse_json(text, name, "tokenizer.json")
    except ArchError:
        SourceCache().add(name, text)  # the excerpt quotes the text read, not the file as it is now
        raise
    model = data.get("model") if isinstance(data, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    ids = list(vocab.values()) if isinstance(vocab, dict) else []
    added = data.get("added_tokens") if isinstance(data, dict) else None
    ids += [t.get("id") for t in added if isinstance(t, dict)] if isinstance(added, list) else []
    ids = [i for i in ids if isinstance(i, int) and not isinstance(i, bool) and i >= 0]
    return max(ids) + 1 if ids else None
