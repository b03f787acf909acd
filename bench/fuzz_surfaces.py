"""The fuzzer's surfaces beyond the language (issue 18): what users hand ttspec from outside a spec.

    import-hf   hostile-but-plausible config.json for every family import-hf reads: transformers'
                own configs for tiny sizes (to_dict and save_pretrained's diff) and the published
                ones in specs/hf, with fields set to 0, negatives, 10**9, 2**40, 5,000-digit integers,
                floats where ints go, strings, null, NaN/Infinity, deep nesting, wrong relations
                (kv heads not dividing heads, odd head_dim), rope_scaling variants, other families'
                fields; byte-level corruptions; the file a FIFO, a directory, a dangling symlink, /dev/zero;
                hostile directory names and files beside it (tokenizer.json, shards)
    weights     checkpoint directories for `run --mode torch --weights` (and `generate --score`):
                tensors missing, extra, reshaped, retyped, NaN/Inf; safetensors headers lying or
                corrupted, files truncated; sharded with hostile indexes; config.json disagreeing
                with the spec or corrupted; any of the files a FIFO, directory or dangling symlink
    tokenizer   tokenizer.json beside --weights for `generate --prompt` (and `import-hf`): corrupted,
                deeply nested, huge or out-of-vocabulary ids, unable to encode, not a regular file
    options     generate and run options: temperatures, top-k, top-p, seeds, --max-new-tokens,
                --batch at their edges; --prompts files and --tokens arrays of every odd kind;
                a sample in --mode golden

Every case runs in a child forked from the warm fuzzer (torch, transformers, tokenizers imported
once), with a per-command SIGALRM limit, a hard kill behind it, an address-space limit (so an
unbounded allocation is a MemoryError, class `memory`, not a machine out of memory) and its own
$TMPDIR (anything `ttspec-*` left there is class `leak`). The oracles, besides never exit 70,
never a traceback, never past the limit:
    import-hf   exit 0 writes a spec `check` accepts (and, for a sample, `params` counts exactly
                the parameters of transformers' own model for the same config.json, built on the
                meta device); exit 1 names the config (class `unlocated` otherwise); no partial output
    weights     exit 0 or a located exit 1; a checkpoint that cannot be the spec's (a tensor missing,
    tokenizer   NaN, config.json disagreeing on a field the spec encodes, a file that is not a
                regular file) must be refused (class `wrong` when it runs)
    options     exit 0, or 1 / 2 with a diagnostic
and for all, no terminal control characters in the output (class `escape`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SURFACES = ("import-hf", "weights", "tokenizer", "options")
LIMIT_S = 4.0  # per command in a child: a tiny model's run or generate takes about 0.1 s
MEMORY_HEADROOM = 3 << 30  # address space a child may add to the fuzzer's own
HF_SAMPLE = 0.7  # share of accepted imports whose parameter count is compared with transformers'
GOLDEN_SAMPLE = 0.1  # share of options cases run in --mode golden


class Timeout(BaseException):  # not an Exception: cli.main must not turn it into exit 70
    pass


def _alarm(signum, frame):
    raise Timeout()


@contextlib.contextmanager
def time_limit(seconds: float):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _frame(tb) -> str:
    where = "?"
    for frame in traceback.extract_tb(tb):
        path = frame.filename.replace("\\", "/")
        if "/ttspec/" in path:
            where = f"{path.split('/ttspec/')[-1]}:{frame.lineno}"
    return where


def _function(tb) -> str:
    """The innermost ttspec function a traceback passes through: a hang's place, stable across lines."""
    where = "?"
    for frame in traceback.extract_tb(tb):
        path = frame.filename.replace("\\", "/")
        if "/ttspec/" in path:
            where = f"{path.split('/ttspec/')[-1].removesuffix('.py').replace('/', '.')}.{frame.name}"
    return where


def _key(exc: BaseException) -> str:
    return f"{type(exc).__name__} at {_frame(exc.__traceback__)}"


def _norm(message: str) -> str:
    """A diagnostic's message with its particulars (numbers, quoted text, paths) blanked: one key per kind."""
    text = re.sub(r"`[^`]*`|'[^']*'|\"[^\"]*\"", "_", message)
    text = re.sub(r"(/[^\s:,]+)+", "PATH", text)
    text = re.sub(r"[-+]?\d[\d,._eE+-]*", "N", text)
    return text.strip()[:90]


# ---------------------------------------------------------------- hostile values
BIG_INT = "9" * 5000
DEEP = "[" * 100000 + "]" * 100000
INT_VALUES = ["0", "-1", "1", "2", "3", "7", "1000000000", str(1 << 40), str((1 << 40) + 1), str(1 << 63),
              "100000000000000000000000000000", BIG_INT, "1.5", "64.0", "1e-300", "1e308", "-0.0", '"64"', "null",
              "true", "[]", "{}", "NaN", "Infinity", "-Infinity", DEEP, "100001", "65536"]
FLOAT_VALUES = ["0", "0.0", "-1e-06", "1e-45", "1e-300", "1e308", "NaN", "Infinity", "-Infinity", '"x"', "null",
                "1", "2.5", "-2.0", "true", "[1e-6]", BIG_INT, "1e-320"]
STRINGS = ['"gelu"', '"gelu_new"', '"relu"', '"silu"', '"swish"', '"tanh"', '""', '"gelu_pytorch_tanh"', '"\\n"',
           '"' + "x" * 1000 + '"', '"\\u001b[2J"', "1", "null", '["silu"]']
ROPES = [
    {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
    {"rope_type": "linear", "factor": 0.0, "rope_theta": 10000.0},
    {"rope_type": "linear", "factor": -2.0, "rope_theta": 10000.0},
    {"rope_type": "linear", "rope_theta": 10000.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 64, "rope_theta": 500000.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0,
     "original_max_position_embeddings": 64, "rope_theta": 500000.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 2.0, "high_freq_factor": 2.0,
     "original_max_position_embeddings": 64, "rope_theta": 500000.0},
    {"rope_type": "llama3", "factor": 0.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 0, "rope_theta": 500000.0},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
     "original_max_position_embeddings": 1 << 62, "rope_theta": 500000.0},
    {"rope_type": "dynamic", "factor": 2.0}, {"rope_type": "yarn", "factor": 4.0},
    {"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0]},
    {"type": "linear", "rope_type": "llama3", "factor": 2.0},
    {"rope_type": "default", "rope_theta": 0.0}, {"rope_type": "default", "rope_theta": -10000.0},
    {"rope_type": "default", "rope_theta": 1e-300}, {"rope_type": "default", "rope_theta": 10000.0,
                                                     "partial_rotary_factor": 0.3},
    {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.0},
    {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 2.0},
    {"full_attention": {"rope_type": "default"}, "sliding_attention": {"rope_type": "default"}},
    {"rope_type": 3}, {}, [], "default", None,
]
DIR_NAMES = ["model", "Qwen2.5-0.5B", "a\nmodel tricked", "\x1b[2Jred", "x" * 200, " ", "-o", "é-π", "class",
             "model\rx", "1st"]
SHARD_NAMES = ["model-00001-of-00002.safetensors", "a\nb.safetensors", "\x1b[31mred.safetensors",
               "x" * 150 + ".safetensors"]
SIZE_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "max_position_embeddings", "head_dim", "n_embd", "n_layer", "n_head",
             "n_positions", "n_inner", "sliding_window", "max_window_layers", "query_pre_attn_scalar",
             "original_max_position_embeddings")
FLOAT_KEYS = ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "rope_theta", "partial_rotary_factor",
              "attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar")
ACT_KEYS = ("hidden_act", "hidden_activation", "activation_function")
OTHER_FIELDS = {  # fields some family reads, with values that may or may not be neutral for another
    "attention_bias": ["true", "false"], "mlp_bias": ["true"], "qk_layernorm": ["true"], "use_sliding_window": ["true"],
    "tie_word_embeddings": ["true", "false", '"yes"', "1", "null"], "use_bidirectional_attention": ["true"],
    "is_encoder_decoder": ["true"], "add_cross_attention": ["true"], "pruned_heads": ['{"0": [1]}'],
    "quantization_config": ['{"bits": 4}'], "scale_attn_by_inverse_layer_idx": ["true"],
    "layer_types": ['["full_attention"]', '["sliding_attention", "full_attention"]', '["x", "y"]', "[1, 2]"],
    "architectures": ['["LlamaForCausalLM"]', '["X", "Y"]', "[]", '"LlamaForCausalLM"', "[null]"],
    "transformers_version": ['"4.0\\nmodel evil"', '"\\u001b[2J"', "4", '"' + "9" * 300 + '"'],
    "model_type": ['"llama"', '"gpt2"', '"gemma2"', '"phi"', '"bert"', '""', "null", "1"],
    "unknown_field": ["1"], "_private": ["1"], "rope_scaling": [json.dumps(r) for r in ROPES[:6]],
}


def _raw(value) -> str:
    return json.dumps(value)


# ---------------------------------------------------------------- the bases, built once per campaign
SIZES = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128)


def hf_configs():
    """transformers' config objects for a tiny model of every family import-hf reads."""
    import transformers as T

    return {
        "llama": T.LlamaConfig(**SIZES),
        "mistral": T.MistralConfig(**SIZES, sliding_window=32),
        "qwen2": T.Qwen2Config(**SIZES),
        "qwen3": T.Qwen3Config(**SIZES, head_dim=16),
        "gemma": T.GemmaConfig(**SIZES, head_dim=16),
        "gemma2": T.Gemma2Config(**SIZES, head_dim=16, query_pre_attn_scalar=16, sliding_window=32),
        "phi": T.PhiConfig(**dict(SIZES, num_key_value_heads=4)),
        "phi3": T.Phi3Config(**SIZES, pad_token_id=0, bos_token_id=0, eos_token_id=0),
        "gpt2": T.GPT2Config(vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=128, n_inner=128,
                             bos_token_id=0, eos_token_id=0),
    }


# fields each family's transformers class reads that change the logits, with a different valid value
FAMILY_DISAGREE = {
    "llama": [("rope_parameters.rope_theta", 20000.0), ("rms_norm_eps", 1e-3), ("hidden_act", "gelu"),
              ("tie_word_embeddings", True), ("rope_parameters", {"rope_type": "linear", "factor": 2.0,
                                                                  "rope_theta": 10000.0}), ("rope_theta", 500000.0)],
    "mistral": [("rope_parameters.rope_theta", 1e6), ("rms_norm_eps", 1e-3), ("hidden_act", "relu"),
                ("sliding_window", 16), ("sliding_window", None)],
    "qwen2": [("rope_parameters.rope_theta", 1e6), ("rms_norm_eps", 1e-3), ("hidden_act", "gelu"),
              ("tie_word_embeddings", True)],
    "qwen3": [("rope_parameters.rope_theta", 1e6), ("rms_norm_eps", 1e-3), ("hidden_act", "gelu")],
    "gemma": [("rope_parameters.rope_theta", 1e6), ("rms_norm_eps", 1e-3), ("hidden_act", "silu")],
    "gemma2": [("rope_parameters.rope_theta", 1e6), ("rms_norm_eps", 1e-3), ("hidden_activation", "silu"),
               ("attn_logit_softcapping", 5.0), ("final_logit_softcapping", None), ("query_pre_attn_scalar", 24),
               ("sliding_window", 8)],
    "phi": [("rope_parameters.rope_theta", 1e6), ("layer_norm_eps", 1e-2), ("hidden_act", "relu"),
            ("rope_parameters.partial_rotary_factor", 1.0)],
    "phi3": [("rope_parameters.rope_theta", 1e6), ("rms_norm_eps", 1e-3), ("hidden_act", "gelu"),
             ("sliding_window", 16)],
    "gpt2": [("layer_norm_epsilon", 1e-2), ("activation_function", "relu")],
}


@dataclass
class Base:
    family: str
    config: dict  # config.json as save_pretrained writes it
    spec: str  # the spec import-hf writes for it
    state: dict  # HF-named random tensors (torch)
    ours: dict  # the same under ttspec's names


class Bases:
    """What the surfaces mutate: configs per family, specs and checkpoints for them, a tokenizer."""

    def __init__(self, work: Path):
        import transformers  # noqa: F401 - imported once here, so children fork it warm

        from ttspec.driver import load_model
        from ttspec.importers.hf import import_hf
        from ttspec.runtime.weights import random_hf_state_dict, random_state_dict

        self.configs: dict[str, list[dict]] = {}
        self.bases: dict[str, Base] = {}
        folder = work / "bases"
        for family, config in hf_configs().items():
            diff, full = config.to_diff_dict(), config.to_dict()
            self.configs[family] = [json.loads(json.dumps(diff)), json.loads(json.dumps(full))]
            d = folder / family
            d.mkdir(parents=True, exist_ok=True)
            (d / "config.json").write_text(json.dumps(diff, indent=2) + "\n")
            imported = import_hf(d, name=f"{family}_tiny")
            (d / "spec.arch").write_text(imported.text)
            model = load_model(d / "spec.arch")
            self.bases[family] = Base(family, diff, imported.text, random_hf_state_dict(model, 0),
                                      random_state_dict(model, 0))
        for path in sorted((ROOT / "specs" / "hf").glob("*/config.json")):  # the published ones, full size
            data = json.loads(path.read_text())
            self.configs.setdefault(data.get("model_type", "llama"), []).append(data)
        self.tokenizer = _tokenizer_json()
        self.families = sorted(self.bases)
        self._prepare_models()

    @staticmethod
    def _prepare_models() -> None:
        """Import every family's transformers modelling module now, so no child pays for it."""
        import importlib

        for module in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi", "phi3", "gpt2"):
            with contextlib.suppress(Exception):
                importlib.import_module(f"transformers.models.{module}.modeling_{module}")


WORDS = ["hello", "world", "the", "a", "model", "token", "is", "of", "and", "to"]


def _tokenizer_json(unk: bool = True) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0} if unk else {}
    for w in WORDS + [chr(c) for c in range(ord("a"), ord("z") + 1)]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]" if unk else None))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok.to_str()


# ---------------------------------------------------------------- cases
@dataclass
class Case:
    """One surface case: its base, and the parts that make it (each removable while minimizing)."""

    surface: str
    base: str
    parts: list
    command: str = ""  # which command the case runs (for the statistics and findings)

    def to_json(self) -> dict:
        return {"surface": self.surface, "base": self.base, "command": self.command, "parts": self.parts}


@dataclass
class Plan:
    """A realized case: the files written, the command line, and what the oracles expect."""

    argv: list[str]
    refuse: list[str] = field(default_factory=list)  # why it must not exit 0 (empty: 0 is fine)
    located: bool = True  # an exit 1 must name a file of the case
    check_output: str | None = None  # import-hf: the spec it writes, which `check` must accept
    hf_compare: bool = False  # import-hf: compare the parameter count with transformers'
    config_dir: str | None = None


def draw(surface: str, rng: random.Random, bases: Bases) -> Case:
    return DRAW[surface](rng, bases)


def _draw_import(rng: random.Random, bases: Bases) -> Case:
    family = rng.choice(sorted(bases.configs))
    config = rng.choice(bases.configs[family])
    parts: list = [["kv", k, _raw(v)] for k, v in config.items()]
    if rng.random() < 0.3:  # hostile but valid only: what the parameter-count oracle compares with transformers
        parts += [list(rng.choice(VALID)) for _ in range(rng.choice((1, 1, 2)))]
        return Case("import-hf", family, parts + [["hf", True]], "import-hf")
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        parts.append(_config_mutation(rng, config))
    if rng.random() < 0.08:
        parts.append(["bytes", rng.choice(("truncate", "flip", "bom", "latin1", "crlf", "dupkey", "empty", "null",
                                           "list", "nul")), rng.random()])
    if rng.random() < 0.05:
        parts.append(["file", rng.choice(("fifo", "dir", "dangling", "devzero"))])
    if rng.random() < 0.1:
        parts.append(["dirname", rng.choice(DIR_NAMES)])
    if rng.random() < 0.1:
        parts.append(["beside", rng.choice(("tokenizer-deep", "tokenizer-bigint", "tokenizer-ok", "tokenizer-fifo",
                                            "tokenizer-dir", "shards", "index-deep"))])
    if rng.random() < 0.5:
        parts.append(["path", "config"])  # import-hf DIR/config.json rather than DIR
    if rng.random() < 0.05:
        parts.append(["argv", rng.choice((["--name", "class"], ["--name", "a" * 50], ["--name", "ok_name"],
                                          ["--ignore", "unknown_field"], ["--name", "\x1b[2J"]))])
    parts.append(["hf", rng.random() < HF_SAMPLE])
    return Case("import-hf", family, parts, "import-hf")


# hostile but valid: what real configs do that the tiny ones do not (the parameter-count oracle's cases)
VALID = [["set", "head_dim", "32"], ["set", "head_dim", "8"], ["set", "num_key_value_heads", "1"],
         ["set", "num_key_value_heads", "4"], ["set", "tie_word_embeddings", "true"],
         ["set", "tie_word_embeddings", "false"], ["del", "tie_word_embeddings"], ["set", "attention_bias", "true"],
         ["set", "mlp_bias", "true"], ["set", "num_hidden_layers", "3"], ["set", "intermediate_size", "96"],
         ["set", "vocab_size", "1000"], ["set", "rope_parameters", _raw(ROPES[0])],
         ["set", "rope_parameters", _raw(ROPES[4])], ["setin", "rope_parameters", "partial_rotary_factor", "0.25"],
         ["del", "rope_parameters"], ["del", "partial_rotary_factor"], ["set", "n_inner", "null"],
         ["set", "hidden_act", '"gelu"'], ["set", "use_sliding_window", "true"], ["set", "sliding_window", "16"],
         ["set", "max_position_embeddings", "64"], ["set", "query_pre_attn_scalar", "24"],
         ["set", "final_logit_softcapping", "null"], ["del", "head_dim"], ["set", "n_embd", "128"],
         ["set", "layer_types", '["sliding_attention", "full_attention"]'], ["set", "max_window_layers", "1"],
         ["set", "rope_theta", "500000.0"], ["set", "rope_scaling", "null"], ["set", "rms_norm_eps", "1e-05"]]


def _config_mutation(rng: random.Random, config: dict) -> list:
    if rng.random() < 0.35:
        return list(rng.choice(VALID))
    how = rng.randrange(10)
    keys = list(config)
    if how <= 2:  # a size set to a hostile value
        present = [k for k in SIZE_KEYS if k in config] or list(SIZE_KEYS)
        return ["set", rng.choice(present if rng.random() < 0.8 else SIZE_KEYS), rng.choice(INT_VALUES)]
    if how == 3:  # a float
        present = [k for k in FLOAT_KEYS if k in config] or list(FLOAT_KEYS)
        if "rope_parameters" in config and rng.random() < 0.4:
            return ["setin", "rope_parameters", rng.choice(("rope_theta", "partial_rotary_factor", "factor")),
                    rng.choice(FLOAT_VALUES)]
        return ["set", rng.choice(present if rng.random() < 0.8 else FLOAT_KEYS), rng.choice(FLOAT_VALUES)]
    if how == 4:  # the rope
        return ["set", rng.choice(("rope_parameters", "rope_scaling")), _raw(rng.choice(ROPES))]
    if how == 5:  # the activation
        return ["set", rng.choice(ACT_KEYS), rng.choice(STRINGS)]
    if how == 6:  # another family's field, or bookkeeping
        key = rng.choice(sorted(OTHER_FIELDS))
        return ["set", key, rng.choice(OTHER_FIELDS[key])]
    if how == 7 and keys:  # a field deleted
        return ["del", rng.choice(keys)]
    if how == 8:  # relations between sizes
        heads = rng.choice((3, 4, 5, 6, 8, 12))
        return ["rel", rng.choice(("kv_not_dividing", "heads_not_dividing", "odd_head_dim", "head_dim_other",
                                   "layers_huge", "window_zero", "window_over", "tiny_all", "layers_1e9")), heads]
    # any field: a value of the wrong kind
    key = rng.choice(keys) if keys else "hidden_size"
    return ["set", key, rng.choice(["null", "NaN", "[]", "{}", '"64"', "true", DEEP, BIG_INT, "-1", "0"])]


def _apply_config(parts: list) -> tuple[list[tuple[str, str]], list]:
    """(key, raw JSON) pairs of the config after the parts' edits, and the byte-level edits."""
    items: dict[str, str] = {}
    later = []
    for p in parts:
        kind = p[0]
        if kind == "kv" or kind == "set":
            items[p[1]] = p[2]
        elif kind == "del":
            items.pop(p[1], None)
        elif kind == "setin":
            try:
                inner = json.loads(items.get(p[1], "{}"))
                if not isinstance(inner, dict):
                    inner = {}
                inner[p[2]] = "\0RAW\0"
                items[p[1]] = json.dumps(inner).replace('"\\u0000RAW\\u0000"', p[3])
            except (ValueError, RecursionError):
                pass
        elif kind == "rel":
            _relation(items, p[1], p[2])
        elif kind == "bytes":
            later.append(p)
    return list(items.items()), later


def _relation(items: dict[str, str], how: str, heads: int) -> None:
    gpt2 = "n_embd" in items
    hk, nk, lk = ("n_embd", "n_head", "n_layer") if gpt2 else ("hidden_size", "num_attention_heads",
                                                               "num_hidden_layers")
    if how == "kv_not_dividing":
        items[nk], items["num_key_value_heads"] = str(heads), str(heads - 1 if heads > 2 else 3)
    elif how == "heads_not_dividing":
        items[nk], items[hk] = str(heads), str(heads * 16 + 1)
        items.pop("head_dim", None)
    elif how == "odd_head_dim":
        items["head_dim"] = str(2 * heads + 1)
    elif how == "head_dim_other":
        items["head_dim"] = "32"
    elif how == "layers_huge":
        items[lk] = "100001"
    elif how == "layers_1e9":
        items[lk] = "1000000000"
    elif how == "window_zero":
        items["sliding_window"] = "0"
    elif how == "window_over":
        items["sliding_window"] = "100000"
    elif how == "tiny_all":
        for k in (hk, nk, lk, "intermediate_size", "vocab_size", "max_position_embeddings"):
            items[k] = "1"


def _config_text(items: list[tuple[str, str]], later: list) -> bytes:
    text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {v}" for k, v in items) + "\n}\n"
    data = text.encode("utf-8")
    for _, how, r in later:
        if how == "truncate":
            data = data[:int(len(data) * r)]
        elif how == "flip" and data:
            i = int(len(data) * r) % len(data)
            data = data[:i] + bytes([data[i] ^ (1 << (i % 8))]) + data[i + 1:]
        elif how == "bom":
            data = b"\xef\xbb\xbf" + data
        elif how == "latin1":
            data = data.replace(b'"', b'"\xe9', 1)
        elif how == "crlf":
            data = data.replace(b"\n", b"\r\n")
        elif how == "dupkey" and items:
            data = data.replace(b"{\n", b"{\n  " + json.dumps(items[0][0]).encode() + b": null,\n", 1)
        elif how == "empty":
            data = b""
        elif how == "null":
            data = b"null\n"
        elif how == "list":
            data = b"[" + data + b"]"
        elif how == "nul":
            data = data.replace(b"\n", b"\x00", 1)
    return data


def _special(path: Path, kind: str) -> None:
    """Put something that is not a regular file at `path`."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
        (path / "x").write_text("x")
    elif kind == "dangling":
        os.symlink(path.parent / "no-such-file", path)
    elif kind == "devzero":
        os.symlink("/dev/zero", path)
    elif kind == "empty":
        path.write_bytes(b"")


def _realize_import(case: Case, folder: Path, bases: Bases) -> Plan:
    items, later = _apply_config(case.parts)
    opts = {p[0]: p[1:] for p in case.parts if p[0] in ("file", "dirname", "beside", "path", "argv", "hf")}
    name = opts["dirname"][0] if "dirname" in opts else "model"
    model_dir = folder / name
    model_dir.mkdir(parents=True, exist_ok=True)
    config = model_dir / "config.json"
    config.write_bytes(_config_text(items, later))
    if "file" in opts:
        _special(config, opts["file"][0])
    if "beside" in opts:
        _beside(model_dir, opts["beside"][0], bases)
    target = f"{name}/config.json" if "path" in opts else name
    argv = ["import-hf", "./" + target if target.startswith("-") else target, "-o", "out.arch"]
    if "argv" in opts:
        argv += opts["argv"][0]
    return Plan(argv, check_output="out.arch", hf_compare=bool(opts.get("hf", [False])[0]) and "file" not in opts,
                config_dir=name)


def _beside(model_dir: Path, how: str, bases: Bases) -> None:
    tok = model_dir / "tokenizer.json"
    if how == "tokenizer-deep":
        tok.write_text('{"model": {"vocab": ' + DEEP + "}}")
    elif how == "tokenizer-bigint":
        tok.write_text('{"model": {"vocab": {"a": ' + BIG_INT + '}}, "added_tokens": []}')
    elif how == "tokenizer-ok":
        tok.write_text(bases.tokenizer)
    elif how == "tokenizer-fifo":
        os.mkfifo(tok)
    elif how == "tokenizer-dir":
        tok.mkdir()
    elif how == "shards":
        for n in SHARD_NAMES:
            (model_dir / n).write_bytes(b"")
    elif how == "index-deep":
        (model_dir / "model.safetensors.index.json").write_text('{"weight_map": ' + DEEP + "}")


# -- checkpoints
WEIGHT_OPS = ("drop", "extra", "extra_inv_freq", "shape", "dtype_float", "dtype_int", "nan", "inf", "disagree",
              "config_field", "config_bytes", "config_file", "file", "header", "truncate", "shard", "index",
              "ttspec_names", "no_config", "target")


def _draw_weights(rng: random.Random, bases: Bases) -> Case:
    family = rng.choice(bases.families)
    parts: list = []
    for _ in range(rng.choice((1, 1, 1, 2))):
        op = rng.choice(WEIGHT_OPS)
        parts.append([op, rng.randrange(1 << 30), rng.random()])
    command = "generate" if rng.random() < 0.25 else "run"
    return Case("weights", family, parts, command)


def _mutated_state(case: Case, base: Base) -> tuple[dict, list[str]]:
    import torch

    names_ttspec = any(p[0] == "ttspec_names" for p in case.parts)
    state = dict(base.ours if names_ttspec else base.state)
    refuse = []
    names = sorted(state)
    for op, n, r in (p for p in case.parts if p[0] in ("drop", "extra", "extra_inv_freq", "shape", "dtype_float",
                                                       "dtype_int", "nan", "inf")):
        name = names[n % len(names)]
        if name not in state:
            continue
        if op == "drop":
            del state[name]
            refuse.append(f"a tensor missing: {name}")
        elif op == "extra":
            state["extra.weight" if r < 0.5 else name + "_copy"] = torch.zeros(3)
            refuse.append("a tensor the spec does not use: extra")
        elif op == "extra_inv_freq" and not names_ttspec:
            state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)  # HF's buffer: ignored
        elif op == "shape":
            t = state[name]
            wider = torch.zeros(*t.shape[:-1], t.shape[-1] + 1)
            state[name] = wider if r < 0.5 else t.reshape(-1)[:max(1, t.numel() // 2)]
            refuse.append(f"a tensor of the wrong shape: {name}")
        elif op == "dtype_float":
            state[name] = state[name].to((torch.float16, torch.bfloat16, torch.float64)[n % 3])
        elif op == "dtype_int":
            state[name] = state[name].to((torch.int32, torch.int8, torch.bool, torch.int64)[n % 4])
            refuse.append(f"a tensor of integers: {name}")
        elif op in ("nan", "inf") and state[name].is_floating_point():
            t = state[name].clone()
            t.view(-1)[n % t.numel()] = float("nan") if op == "nan" else (float("inf") if r < 0.5 else -float("inf"))
            state[name] = t
            refuse.append(f"a non-finite tensor: {name} holds {op}")
    return state, refuse


def _safetensors_bytes(state: dict) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})


def _corrupt_header(data: bytes, n: int, r: float) -> tuple[bytes, bool]:
    """A safetensors file with its header edited: (bytes, whether the result is certainly invalid)."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    how = n % 12
    names = sorted(k for k in header if k != "__metadata__")
    name = names[n % len(names)]
    if how == 0:
        return struct.pack("<Q", (1 << 63) - 1) + data[8:], True
    if how == 1:
        return struct.pack("<Q", len(data) * 2) + data[8:], True
    if how == 2:
        return struct.pack("<Q", 3) + data[8:], True
    if how == 3:
        header[name]["data_offsets"] = [0, len(body) * 4]
    elif how == 4:
        header[name]["data_offsets"] = list(reversed(header[name]["data_offsets"]))
    elif how == 5:
        header[name]["dtype"] = "F99"
    elif how == 6:
        header[name]["shape"] = [-1, 3]
    elif how == 7:
        header[name]["shape"] = [1 << 40, 1 << 40]
    elif how == 8:
        raw = json.dumps(header).replace("{", "{\"deep\": " + "[" * 5000 + "]" * 5000 + ", ", 1).encode()
        return struct.pack("<Q", len(raw)) + raw + body, True
    elif how == 9:
        header["__metadata__"] = {"format": "pt", "x" * 10: "\x1b[2J"}
        raw = json.dumps(header).encode()
        return struct.pack("<Q", len(raw)) + raw + body, False
    elif how == 10:
        raw = json.dumps(header).replace("[", "[" + BIG_INT + ", ", 1).encode()
        return struct.pack("<Q", len(raw)) + raw + body, True
    else:
        raw = b"{not json" + b" " * 20
        return struct.pack("<Q", len(raw)) + raw + body, True
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body, True


def _realize_weights(case: Case, folder: Path, bases: Bases, tokenizer_parts: list | None = None) -> Plan:
    base = bases.bases[case.base]
    (folder / "spec.arch").write_text(base.spec)
    ckpt = folder / "ckpt"
    ckpt.mkdir()
    state, refuse = _mutated_state(case, base)
    ops = {p[0]: p for p in case.parts}
    config = dict(base.config)
    config_text = None
    if "disagree" in ops:
        _, n, _ = ops["disagree"]
        key, value = FAMILY_DISAGREE[base.family][n % len(FAMILY_DISAGREE[base.family])]
        if "." in key:
            outer, inner = key.split(".")
            config[outer] = dict(config.get(outer) or {}, **{inner: value})
        else:
            config[key] = value
        written = "ttspec_names" not in ops and "no_config" not in ops  # else no config.json is written
        if written and json.dumps(config, sort_keys=True) != json.dumps(base.config, sort_keys=True):
            refuse.append(f"config.json disagrees with the spec: {key}")
    if "config_field" in ops:  # a field set to a hostile value: refused, or harmless to the spec
        _, n, r = ops["config_field"]
        key = sorted(config)[n % len(config)]
        hostile = INT_VALUES[n % len(INT_VALUES)]
        config_text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {hostile if k == key else _raw(v)}"
                                         for k, v in config.items()) + "\n}\n"
    if "ttspec_names" in ops or "no_config" in ops:
        config = None
    if config is not None:
        data = (config_text or json.dumps(config, indent=2) + "\n").encode()
        if "config_bytes" in ops:
            _, n, r = ops["config_bytes"]
            how = n % 5
            data = [data[:int(len(data) * r)], data.replace(b"{", b'{"deep": ' + DEEP.encode() + b",", 1),
                    data.replace(b"{", b'{"big": ' + BIG_INT.encode() + b",", 1),
                    data.replace(b"{", b'{"nan": NaN,', 1), b"\xff\xfe" + data][how]
            if how != 3:
                refuse.append("config.json is not valid JSON: corrupted")
        (ckpt / "config.json").write_bytes(data)
        if "config_file" in ops:
            kind = ("fifo", "dir", "dangling", "devzero")[ops["config_file"][1] % 4]
            _special(ckpt / "config.json", kind)
            refuse.append(f"config.json is not a regular file: {kind}")
    data = _safetensors_bytes(state)
    sharded = "shard" in ops or "index" in ops
    files: dict[str, bytes] = {}
    if sharded:
        names = list(state)
        half = max(1, len(names) // 2)
        groups = [names[:half], names[half:]]
        index = {"metadata": {"total_size": len(data)}, "weight_map": {}}
        for i, group in enumerate(groups):
            fname = f"model-{i + 1:05d}-of-00002.safetensors"
            files[fname] = _safetensors_bytes({k: state[k] for k in group})
            index["weight_map"].update({k: fname for k in group})
        index_text = json.dumps(index, indent=2)
        if "index" in ops:
            _, n, r = ops["index"]
            how = n % 9
            first = next(iter(index["weight_map"]))
            if how == 0:
                index["weight_map"][first] = "../" + index["weight_map"][first]
            elif how == 1:
                index["weight_map"][first] = "/etc/passwd"
            elif how == 2:
                index["weight_map"][first] = 123
            elif how == 3:
                index["weight_map"] = list(index["weight_map"])
            elif how == 4:
                index["weight_map"][first] = "missing.safetensors"
            elif how == 5:
                index["weight_map"][first] = "a\nb\x1b[2J.safetensors"
            index_text = json.dumps(index, indent=2)
            if how == 6:
                index_text = index_text.replace('"metadata"', '"deep": ' + DEEP + ', "metadata"', 1)
            elif how == 7:
                index_text = index_text.replace(str(len(data)), BIG_INT, 1)
            elif how == 8:
                index_text = index_text.replace(str(len(data)), "NaN", 1)
            if how in (0, 1, 2, 3, 4, 5, 6):
                refuse.append(f"the index is broken: how {how}")
        (ckpt / "model.safetensors.index.json").write_text(index_text)
    else:
        files["model.safetensors"] = data
    main_file = sorted(files)[0]
    if "header" in ops:
        _, n, r = ops["header"]
        files[main_file], invalid = _corrupt_header(files[main_file], n, r)
        if invalid:
            refuse.append(f"a safetensors header is corrupt: how {n % 12}")
    if "truncate" in ops:
        _, n, r = ops["truncate"]
        files[main_file] = files[main_file][:int(len(files[main_file]) * min(r, 0.99))]
        refuse.append("a safetensors file is truncated: truncated")
    for fname, blob in files.items():
        (ckpt / fname).write_bytes(blob)
    if "file" in ops:
        kind = ("fifo", "dir", "dangling", "devzero", "empty")[ops["file"][1] % 5]
        _special(ckpt / main_file, kind)
        refuse.append(f"a safetensors file is not a regular file: {kind}")
    target = "ckpt"
    if "target" in ops:
        choices = ["ckpt", f"ckpt/{main_file}", "ckpt/config.json"] + (
            ["ckpt/model.safetensors.index.json"] if sharded else [])
        target = choices[ops["target"][1] % len(choices)]
        if target == f"ckpt/{main_file}" and sharded:
            refuse.append("one shard of two: shard")
    if tokenizer_parts is not None:
        _tokenizer_file(ckpt, tokenizer_parts, bases, refuse)
        prompt = next((p[1] for p in tokenizer_parts if p[0] == "prompt"), "hello world")
        argv = ["generate", "spec.arch", "--mode", "torch", "--weights", target, f"--prompt={prompt}",
                "--max-new-tokens", "2"]
        corrupt = {"deep", "bigint", "nan", "truncate", "latin1", "empty", "null"}
        return Plan(argv, refuse, located=any(p[0] == "tok" and p[1] in corrupt for p in tokenizer_parts))
    if case.command == "generate":
        import numpy as np

        np.save(folder / "t.npy", np.array([[1, 2, 3, 4, 5]], dtype=np.int64))
        argv = ["generate", "spec.arch", "--mode", "torch", "--weights", target, "--score", "--tokens", "t.npy",
                "--prefill", "2"]
    else:
        argv = ["run", "spec.arch", "--mode", "torch", "--weights", target, "--random-tokens", "1,4"]
    return Plan(argv, refuse)


# -- tokenizers
PROMPTS = ["hello world", "zzz qqq", "", " ", "é π 中文", "\x00\x01", "\x1b[2J", "hello " * 200, "unknownword",
           "a\nb", "-", "--help"]


def _draw_tokenizer(rng: random.Random, bases: Bases) -> Case:
    parts: list = []
    for _ in range(rng.choice((1, 1, 2))):
        how = rng.choice(("deep", "bigint", "id_out", "id_neg", "id_huge", "nan", "truncate", "latin1", "empty",
                          "null", "no_unk", "fifo", "dir", "dangling", "devzero", "added_bad", "vocab_list",
                          "model_missing", "string_id", "ok"))
        parts.append(["tok", how, rng.random()])
    parts.append(["prompt", rng.choice(PROMPTS)])
    command = "import-hf" if rng.random() < 0.25 else "generate"
    return Case("tokenizer", "llama", parts, command)


def _tokenizer_file(folder: Path, parts: list, bases: Bases, refuse: list) -> None:
    path = folder / "tokenizer.json"
    text = bases.tokenizer
    special = None
    for p in parts:
        if p[0] != "tok":
            continue
        how, r = p[1], p[2]
        data = None
        if how in ("id_out", "id_neg", "id_huge", "no_unk", "added_bad", "vocab_list", "model_missing", "string_id"):
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                continue  # an earlier edit broke the JSON: this one has nothing to edit
            if not isinstance(data, dict):
                continue
        if data is not None:
            try:
                vocab = data["model"]["vocab"]
            except (KeyError, TypeError):
                vocab = None
            if how == "id_out" and isinstance(vocab, dict):
                vocab["hello"] = 300  # past the spec's 256 rows
            elif how == "id_neg" and isinstance(vocab, dict):
                vocab["hello"] = -5
            elif how == "id_huge" and isinstance(vocab, dict):
                vocab["hello"] = 1 << 40
            elif how == "no_unk" and isinstance(data.get("model"), dict):
                data["model"]["unk_token"] = None
                if isinstance(vocab, dict):
                    vocab.pop("[UNK]", None)
            elif how == "added_bad":
                data["added_tokens"] = [{"id": 1 << 33, "content": "zz", "special": False, "single_word": False,
                                         "lstrip": False, "rstrip": False, "normalized": True}]
            elif how == "vocab_list" and isinstance(data.get("model"), dict):
                data["model"]["vocab"] = list(vocab) if isinstance(vocab, dict) else []
            elif how == "model_missing":
                data.pop("model", None)
            elif how == "string_id" and isinstance(vocab, dict):
                vocab["hello"] = "1"
            text = json.dumps(data)
        elif how == "deep":
            text = text.replace('"vocab":', '"vocab": ' + DEEP + ', "x":', 1)
        elif how == "bigint":
            text = text.replace('"hello":', '"hello": ' + BIG_INT + ', "h2":', 1)
        elif how == "nan":
            text = text.replace('"hello":', '"hello": NaN, "h2":', 1)
        elif how == "truncate":
            text = text[:int(len(text) * r)]
        elif how == "latin1":
            text = text.replace('"hello"', '"hell\udcff"', 1)
        elif how == "empty":
            text = ""
        elif how == "null":
            text = "null"
        elif how in ("fifo", "dir", "dangling", "devzero"):
            special = how
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    if special:
        _special(path, special)
        refuse.append(f"tokenizer.json is not a regular file: {special}")


def _realize_tokenizer(case: Case, folder: Path, bases: Bases) -> Plan:
    base_case = Case("weights", "llama", [], "run")
    if case.command == "import-hf":
        model = folder / "model"
        model.mkdir()
        (model / "config.json").write_text(json.dumps(bases.bases["llama"].config, indent=2))
        _tokenizer_file(model, case.parts, bases, [])  # import-hf only notes the tokenizer's size: none refused
        return Plan(["import-hf", "model", "-o", "out.arch"], check_output="out.arch", config_dir="model")
    return _realize_weights(base_case, folder, bases, tokenizer_parts=case.parts)


# -- generate and run options
NO_BOUND_SPEC = """model nobound
input tokens: int32[batch, seq]
block decoder(x: [batch, seq, 64]) -> [batch, seq, 64] kind decoder {
    x = x + attention(rmsnorm(x) as attn_norm, heads = 4, rope = rope(theta = 10000.0)) as attn
    return x + swiglu(rmsnorm(x) as mlp_norm, hidden = 128) as mlp
}
h = token_embedding(tokens, 256, 64) as embedding
h = repeat(2) decoder(h) as layers
h = rmsnorm(h) as norm
output logits = lm_head(h, 256)
"""
SMALL_VOCAB_SPEC = NO_BOUND_SPEC.replace("model nobound", "model smallvocab").replace(
    "int32[batch, seq]", "int32[batch, seq] where seq <= 64").replace("256", "64")
OPTION_VALUES = {
    "--temperature": ["0", "1", "0.7", "1e-40", "1e-300", "1e-45", "1e300", "3.4e38", "-1", "nan", "inf", "2"],
    "--top-k": ["1", "2", "5", "255", "256", "1000", "1000000000000", str(1 << 40), "0", "-1"],
    "--top-p": ["1", "0.9", "0.5", "1e-300", "1e-40", "0", "1.0000001", "nan", "-0.5", "1e-8"],
    "--seed": ["0", "1", "-1", str(1 << 63), str(1 << 64), str(-(1 << 63) - 1), "10" + "0" * 30, str((1 << 63) - 1)],
    "--max-new-tokens": ["1", "4", "16", "120", "200", str(1 << 40), "1000000000000", "0"],
    "--batch": ["1", "3", "32", "33", "1000", str(1 << 40), "1000000"],
    "--stop": ["0", "1", "255", "256", "-1"],
    "--prefill": ["1", "2", "5", "0", "1000"],
}
TOKEN_ARRAYS = ["ok", "zero_cols", "zero_rows", "zero_both", "one_d", "three_d", "float", "bool", "uint64_big",
                "int8_neg", "out_of_range", "negative", "long_seq", "huge_seq", "fortran", "object", "bad_magic",
                "huge_header_shape", "empty_file", "scalar", "many_rows"]
PROMPT_FILES = ["ok", "devzero", "fifo", "dir", "empty", "blank_lines", "many_lines", "thirty_three", "latin1",
                "nul", "long_line", "crlf", "dangling"]


def _draw_options(rng: random.Random, bases: Bases) -> Case:
    command = "generate" if rng.random() < 0.75 else "run"
    spec = rng.choice(("llama", "gpt2", "nobound", "smallvocab", "gemma2"))
    mode = "golden" if rng.random() < GOLDEN_SAMPLE else "torch"
    parts: list = [["mode", mode]]
    if command == "generate":
        src = rng.choice(("prompt", "prompt", "prompts", "tokens"))
        if src == "prompt":
            parts.append(["opt", "--prompt", rng.choice(PROMPTS)])
        elif src == "prompts":
            parts.append(["prompts", rng.choice(PROMPT_FILES)])
        else:
            parts.append(["tokens", rng.choice(TOKEN_ARRAYS)])
        for _ in range(rng.choice((1, 2, 2, 3, 4))):
            flag = rng.choice(sorted(OPTION_VALUES))
            parts.append(["opt", flag, rng.choice(OPTION_VALUES[flag])])
        if rng.random() < 0.1:
            parts.append(["opt", "--score"])
        if rng.random() < 0.05:
            parts.append(["opt", "--out", rng.choice(("ids.npy", "outdir", "outdir/"))])
        if not any(p[0] == "opt" and p[1] == "--max-new-tokens" for p in parts):
            parts.append(["opt", "--max-new-tokens", rng.choice(("2", "4", "8"))])
    else:
        if rng.random() < 0.6:
            parts.append(["tokens", rng.choice(TOKEN_ARRAYS)])
        else:
            parts.append(["opt", "--random-tokens", rng.choice(("1,8", "2,16", "0,5", "1,0", f"{1 << 40},1",
                                                                "1,1000000000", "-1,3", "a,b", "1,129", "3,128",
                                                                "1", "1,2,3"))])
        if rng.random() < 0.5:
            parts.append(["opt", "--seed", rng.choice(OPTION_VALUES["--seed"])])
        if rng.random() < 0.1:
            parts.append(["opt", "--out", rng.choice(("l.npy", "outdir"))])
    return Case("options", spec, parts, command)


def _token_array(folder: Path, how: str, bounded: bool = True) -> str:
    """A tokens file of kind `how`. A huge prompt is 100,000 tokens past a spec's seq bound, which must be
    refused at once; a spec without a bound must run it, which is real work (a tiny model's 100,000-token
    prefill takes ~40 s here, past the fuzzer's limit), so there it is 4,096 tokens, still 32x any bound."""
    import numpy as np

    path = folder / "t.npy"
    arrays = {
        "ok": lambda: np.array([[1, 2, 3]], dtype=np.int64), "zero_cols": lambda: np.zeros((1, 0), np.int64),
        "zero_rows": lambda: np.zeros((0, 5), np.int64), "zero_both": lambda: np.zeros((0, 0), np.int64),
        "one_d": lambda: np.array([1, 2, 3]), "three_d": lambda: np.ones((1, 2, 3), np.int64),
        "float": lambda: np.array([[1.5, 2.0]]), "bool": lambda: np.array([[True, False]]),
        "uint64_big": lambda: np.array([[2 ** 64 - 1, 1]], dtype=np.uint64),
        "int8_neg": lambda: np.array([[-3, 1]], dtype=np.int8), "out_of_range": lambda: np.array([[1, 100000]]),
        "negative": lambda: np.array([[-1, 2]]), "long_seq": lambda: np.ones((1, 200), np.int32),
        "huge_seq": lambda: np.ones((1, 100000 if bounded else 4096), np.int32),
        "fortran": lambda: np.asfortranarray(np.ones((2, 3), np.int32)),
        "scalar": lambda: np.array(5), "many_rows": lambda: np.ones((40, 3), np.int64),
    }
    if how in arrays:
        np.save(path, arrays[how]())
    elif how == "object":
        np.save(path, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    elif how == "bad_magic":
        path.write_bytes(b"\x93NUMPX" + b"\x00" * 100)
    elif how == "huge_header_shape":
        header = "{'descr': '<i8', 'fortran_order': False, 'shape': (4611686018427387904, 2), }"
        header += " " * (118 - len(header)) + "\n"
        path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\x00" * 64)
    elif how == "empty_file":
        path.write_bytes(b"")
    return "t.npy"


def _prompts_file(folder: Path, how: str) -> str:
    path = folder / "prompts.txt"
    if how in ("devzero", "fifo", "dir", "dangling"):
        _special(path, how)
    else:
        text = {"ok": b"hello\nworld\n", "empty": b"", "blank_lines": b"\n\n  \n", "many_lines": b"hi\n" * 1000,
                "thirty_three": b"hi\n" * 33, "latin1": b"caf\xe9\n", "nul": b"a\x00b\n", "long_line": b"ab" * 500000,
                "crlf": b"hello\r\nworld\r\n"}[how]
        path.write_bytes(text)
    return "prompts.txt"


def _realize_options(case: Case, folder: Path, bases: Bases) -> Plan:
    spec = {"nobound": NO_BOUND_SPEC, "smallvocab": SMALL_VOCAB_SPEC}.get(case.base)
    (folder / "spec.arch").write_text(spec or bases.bases[case.base].spec)
    (folder / "outdir").mkdir()
    argv = [case.command, "spec.arch"]
    for p in case.parts:
        if p[0] == "mode":
            argv += ["--mode", p[1]] + (["--target", "n150"] if p[1] == "golden" else [])
        elif p[0] == "opt":
            argv += p[1:]
        elif p[0] == "tokens":
            argv += ["--tokens", _token_array(folder, p[1], bounded=case.base not in ("nobound", "smallvocab"))]
        elif p[0] == "prompts":
            argv += ["--prompts", _prompts_file(folder, p[1])]
    return Plan(argv, located=False)


DRAW = {"import-hf": _draw_import, "weights": _draw_weights, "tokenizer": _draw_tokenizer, "options": _draw_options}
REALIZE = {"import-hf": _realize_import, "weights": _realize_weights, "tokenizer": _realize_tokenizer,
           "options": _realize_options}


# ---------------------------------------------------------------- running a case in a forked child
@dataclass
class SurfaceFailure:
    cls: str
    command: str
    key: str
    detail: str

    @property
    def signature(self) -> tuple[str, str, str]:
        return (self.cls, self.command, self.key)


@dataclass
class SurfaceOutcome:
    rc: int | None = None
    failures: list[SurfaceFailure] = field(default_factory=list)
    hf_compared: bool = False
    seconds: float = 0.0


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")


def _child_case(plan: Plan, command: str, limit: float, done=lambda: None) -> dict:
    """In the child: the command, then the oracles that need this process (check, params, transformers)."""
    import ttspec.cli.main as cli

    def main(argv, seconds=limit):
        out = io.StringIO()
        rc, exc = None, None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), time_limit(seconds):
                rc = cli.main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except (Exception, Timeout) as e:  # noqa: BLE001 - a ttspec bug, reported
            exc = e
        return rc, out.getvalue(), exc

    failures = []

    def fail(cls, key, detail, what=command):
        failures.append([cls, what, key, detail[-3000:]])

    rc, text, exc = main(plan.argv)
    done()  # the parent stops waiting for the command; the oracles have their own limits
    result = {"rc": rc, "failures": failures, "hf": False}
    if exc is not None:
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if isinstance(exc, Timeout):
            fail("hang", f"over {limit:g} s in {_function(exc.__traceback__)}", detail)
        elif isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "alloc" in str(exc).lower()):
            fail("memory", _key(exc), detail)
        else:
            fail("internal", _key(exc), detail)
        return result
    if "Timeout" in text and "Exception ignored" in text:  # the alarm landed where Python swallows it
        fail("hang", f"over {limit:g} s (the alarm was swallowed)", text)
        return result
    if rc == 70 or "Traceback (most recent call last)" in text:
        fail("internal", f"exit {rc}", text)
        return result
    if rc not in (0, 1, 2):
        fail("exit", f"exit {rc}", text)
        return result
    bad = CONTROL.search(text)
    if bad:
        fail("escape", f"control character {bad.group()!r} in the output", text)
    if rc != 0:
        if "error" not in text:
            fail("nodiag", f"exit {rc} without an error", text)
        elif rc == 1 and plan.located and not _located(text):
            fail("unlocated", _norm(_error_line(text)), text)
        if plan.check_output and Path(plan.check_output).exists():
            fail("invalid", f"partial output: {plan.check_output} written on exit {rc}", text)
        return result
    if plan.refuse:
        fail("wrong", "accepted " + plan.refuse[0].split(":")[0], "must be refused: " + "; ".join(plan.refuse)
             + "\n\n" + text)
    if plan.check_output:
        out_path = Path(plan.check_output)
        if not out_path.exists():
            return result
        written = out_path.read_text(encoding="utf-8", errors="replace")
        bad = CONTROL.search(written.replace("\t", " "))
        if bad:
            fail("escape", f"control character {bad.group()!r} in the written spec", written[:3000])
        rc2, text2, exc2 = main(["check", plan.check_output])
        if exc2 is not None or rc2 != 0:
            why = _key(exc2) if exc2 is not None else _norm(_error_line(text2))
            fail("invalid", f"writes a spec check rejects: {why}", text2 + "\n--- the spec ---\n" + written[:3000])
            return result
        if plan.hf_compare and plan.config_dir:
            rc3, text3, exc3 = main(["params", plan.check_output, "--json"])
            if rc3 == 0 and exc3 is None:
                total = json.loads(text3)["total"]
                expected = _hf_count(plan.config_dir, limit * 2)
                if expected is not None:
                    result["hf"] = True
                    if expected != total:
                        fail("mismatch", "parameters differ from transformers'",
                             f"ttspec params {total:,}, transformers {expected:,}\n--- the spec ---\n{written[:3000]}")
    return result


def _hf_count(config_dir: str, seconds: float) -> int | None:
    """transformers' own parameter count for config.json, the model built on the meta device; None
    where transformers refuses the config or the model is too big to build quickly."""
    import torch
    import transformers

    try:
        with time_limit(seconds):
            config = transformers.AutoConfig.from_pretrained(config_dir)
            layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0) or 0
            if layers > 64:
                return None
            with torch.device("meta"):
                model = transformers.AutoModelForCausalLM.from_config(config)
            return sum(p.numel() for p in model.parameters())
    except (Exception, Timeout):  # noqa: BLE001 - transformers refusing a hostile config is no finding
        return None


def _error_line(text: str) -> str:
    line = next((ln for ln in text.splitlines() if "error" in ln), text.strip()[:200])
    return line.split("error:", 1)[-1]


def _located(text: str) -> bool:
    """An exit 1's diagnostic names a file of the case (a path, or file:line:col)."""
    line = next((ln for ln in text.splitlines() if "error" in ln), "")
    return bool(re.search(r"[\w.-]+:\d+:\d+", line) or re.search(
        r"(config\.json|tokenizer\.json|\.safetensors|index\.json|spec\.arch|ckpt|\.npy|prompts\.txt|/)", line))


class ForkRunner:
    """Runs surface cases, each in a child forked from this warm process."""

    def __init__(self, work: Path, bases: Bases, limit: float = LIMIT_S):
        import torch

        torch.set_num_threads(1)  # children fork a process with no worker threads to lose
        self.work, self.bases, self.limit = work, bases, limit
        self.serial = 0
        self.memory = _address_space() + MEMORY_HEADROOM
        self.hang_confirmed: dict[tuple, int] = {}

    def run(self, case: Case) -> SurfaceOutcome:
        outcome = self._once(case)
        hangs = [f for f in outcome.failures if f.cls == "hang"]
        if hangs and self.hang_confirmed.get(hangs[0].signature, 0) < 3:  # a loaded machine: confirm
            again = self._once(case)
            if not any(f.cls == "hang" for f in again.failures):
                return again
            for f in hangs:
                self.hang_confirmed[f.signature] = self.hang_confirmed.get(f.signature, 0) + 1
        return outcome

    def materialize(self, case: Case, folder: Path) -> Plan:
        folder.mkdir(parents=True)
        return REALIZE[case.surface](case, folder, self.bases)

    def _once(self, case: Case) -> SurfaceOutcome:
        self.serial += 1
        folder = self.work / f"s{self.serial}"
        tmp = self.work / f"t{self.serial}"
        tmp.mkdir(parents=True)
        start = time.monotonic()
        outcome = SurfaceOutcome()
        try:
            plan = self.materialize(case, folder)
        except Exception:  # noqa: BLE001 - the fuzzer's own bug: said loudly, the campaign goes on
            print(f"fuzzer bug: cannot realize {json.dumps(case.to_json())[:2000]}\n{traceback.format_exc()}",
                  file=sys.stderr, flush=True)
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)
            return outcome
        result = self._fork(plan, case.command, folder, tmp)
        outcome.seconds = time.monotonic() - start
        if isinstance(result, str):
            cls = "hang" if result.startswith("killed") else "internal"
            outcome.failures.append(SurfaceFailure(cls, case.command, result, "the fuzzer's child: " + result))
        else:
            outcome.rc = result["rc"]
            outcome.hf_compared = result["hf"]
            outcome.failures += [SurfaceFailure(*f) for f in result["failures"]]
        left = sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []
        if left:
            kinds = sorted({re.sub(r"^(ttspec-[a-z]+-).*$", r"\1*", n) for n in left})
            outcome.failures.append(SurfaceFailure("leak", case.command, f"left in $TMPDIR: {', '.join(kinds)}",
                                                   f"{len(left)} entries: {left[:5]}"))
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        return outcome

    def _fork(self, plan: Plan, command: str, folder: Path, tmp: Path):
        result_path = folder / ".result.json"
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                os.close(read_end)
                os.set_inheritable(write_end, False)
                os.chdir(folder)
                log = os.open(folder / ".fd.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(log, 1)
                os.dup2(log, 2)
                import gc

                gc.callbacks.clear()  # hypothesis' collection timer: an alarm landing in it is swallowed
                os.environ["TMPDIR"] = str(tmp)
                import tempfile

                tempfile.tempdir = str(tmp)
                soft, hard = resource.getrlimit(resource.RLIMIT_AS)
                resource.setrlimit(resource.RLIMIT_AS, (self.memory, hard))
                import faulthandler

                stack = open(folder / ".stack", "w")  # noqa: SIM115 - kept open for the watchdog thread
                faulthandler.dump_traceback_later(self.limit + 1.5, file=stack)  # where a blocked child is

                def done():
                    faulthandler.cancel_dump_traceback_later()
                    os.write(write_end, b"1")

                try:
                    result = _child_case(plan, command, self.limit, done)
                finally:
                    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
                result_path.write_text(json.dumps(result))
            except BaseException:  # noqa: BLE001
                code = 3
            os._exit(code)
        os.close(write_end)
        # the command has its SIGALRM limit; a child still busy 3 s past it is blocked outside Python
        # (a FIFO opened by a library, a long C loop). Then check, params and transformers, each limited.
        killed = None
        for phase, seconds in (("the command", self.limit + 3), ("the oracles", self.limit * 3 + 10)):
            ready, _, _ = select.select([read_end], [], [], seconds)
            if not ready:
                killed = f"killed: {phase} blocked outside Python past the limit"
                break
            if not os.read(read_end, 1):
                break  # the child exited
        if killed:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(read_end)
        if killed:
            return killed + _blocked_in(folder / ".stack")
        if os.WIFSIGNALED(status):
            return f"died of signal {os.WTERMSIG(status)}"
        try:
            return json.loads(result_path.read_text())
        except (OSError, ValueError):
            return "died without a result"

    def minimize(self, case: Case, failure: SurfaceFailure, budget_s: float) -> Case:
        """Drop parts, one at a time from the end, while the same failure reproduces."""
        deadline = time.monotonic() + budget_s
        parts = list(case.parts)
        i = len(parts) - 1
        while i >= 0 and time.monotonic() < deadline:
            candidate = Case(case.surface, case.base, parts[:i] + parts[i + 1:], case.command)
            if any(f.signature == failure.signature for f in self._once(candidate).failures):
                parts = candidate.parts
            i -= 1
        return Case(case.surface, case.base, parts, case.command)


def _blocked_in(stack: Path) -> str:
    """`: in module.function`, the innermost ttspec frame of faulthandler's dump (most recent call first)."""
    try:
        text = stack.read_text(errors="replace")
    except OSError:
        return ""
    for m in re.finditer(r'File "([^"]+)", line \d+ in (\w+)', text):
        path = m.group(1).replace("\\", "/")
        if "/ttspec/" in path:
            return f" in {path.split('/ttspec/')[-1].removesuffix('.py').replace('/', '.')}.{m.group(2)}"
    return ""


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 4 << 30


def write_reproducer(runner: ForkRunner, case: Case, folder: Path) -> str:
    """The case's files under `folder`, and the command line that reproduces it there."""
    if folder.exists():
        shutil.rmtree(folder)
    plan = runner.materialize(case, folder)
    (folder / "case.json").write_text(json.dumps(case.to_json(), indent=1) + "\n")
    return f"cd {_shell(str(folder))} && ttspec {' '.join(_shell(a) for a in plan.argv)}"


def _shell(word: str) -> str:
    """A word for bash, with $'...' quoting where it holds control characters."""
    import shlex

    if not CONTROL.search(word) and "\n" not in word and "\r" not in word and "\t" not in word:
        return shlex.quote(word)
    return "$'" + "".join(c if c.isprintable() and c not in "'\\" else f"\\x{ord(c):02x}" if ord(c) < 256
                          else c for c in word) + "'"


def surface_draw_rng(seed: int, index: int) -> random.Random:
    """Case `index`'s own generator: a case reproduces from (seed, index) alone."""
    return random.Random(seed * 1_000_003 + index * 7919 + 17)


