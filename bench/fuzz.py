"""Fuzz ttspec's front door (issue 9): hypothesis-generated specs plus mutations of the shipped specs.

Every case runs, in-process through ttspec.cli.main, `check`, `params` (table and --json), `graph`,
`compile` for torch, n150 and n300, and `plan` for n150 and n300, each under a 2 s wall-clock
limit. Every accepted program is compiled with compile(); every accepted torch program is
imported, its model built (on the meta device) and its parameter count compared with what
`params` counts; a sample of the TT-NN programs goes through ruff. Failure classes:

    internal   an uncaught exception in ttspec (what `main` turns into exit 70), or a traceback printed
    hang       one command ran past the limit (confirmed by a second try)
    exit       an exit status other than 0, 1 or 70 (2 is for command-line misuse, and the line is fixed)
    nodiag     exit 1 with no `error` line: refused without a diagnostic
    invalid    an accepted program that does not compile, import or build, or that ruff rejects
    mismatch   the torch model's parameter count differs from `params`

Each distinct failure (class, command, exception and innermost ttspec frame) is minimized by line
and token deletion and written to bench/out/findings/ with its command and traceback.

The same campaign covers the surfaces beyond the language (issue 18; bench/fuzz_surfaces.py):
hostile config.json for `import-hf` (every family), checkpoint directories for `--weights`,
tokenizer.json files, and generate/run options, each case in a child forked from the warm fuzzer
under a time and an address-space limit. Their classes add to the above:

    memory     an allocation past the child's address-space limit (MemoryError)
    leak       files left in $TMPDIR (ttspec-*) after the command ended
    wrong      accepted what must be refused (NaN weights, a config.json that disagrees with the spec,
               a tokenizer.json that is not a regular file, ...)
    unlocated  exit 1 whose diagnostic names no file of the case
    escape     terminal control characters in the output or in a written spec

Half of each chunk of cases is specs (half generated, half mutated), half the surfaces in a fixed
rotation; every case is determined by --seed and its index.

    python bench/fuzz.py --cases 10000 --seed 0 [--seconds T] [--out bench/out] [--surfaces spec,import-hf,...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from fuzz_surfaces import SURFACES, Timeout, time_limit  # noqa: E402  (one alarm for both campaigns)
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LIMIT_S = 2.0
CLASSES = ("internal", "hang", "memory", "leak", "wrong", "invalid", "mismatch", "exit", "nodiag", "unlocated",
           "escape")
# the surfaces' rotation: of every 25 surface cases, 10 configs, 6 checkpoints, 3 tokenizers, 6 option sets
ROTATION = ("import-hf", "weights", "options", "import-hf", "tokenizer", "weights", "import-hf", "options",
            "import-hf", "weights", "options", "import-hf", "tokenizer", "weights", "import-hf", "options",
            "import-hf", "weights", "options", "import-hf", "tokenizer", "weights", "import-hf", "options",
            "import-hf")
TARGETS = ("torch", "n150", "n300")
COMMANDS = (("check", "params", "params-json", "graph") + tuple(f"compile:{t}" for t in TARGETS)
            + ("plan:n150", "plan:n300"))
RUFF_SELECT = "E,F,W,I,B,UP,A"


@dataclass
class Failure:
    cls: str  # internal | hang | invalid | mismatch
    command: str
    key: str  # what makes two failures the same defect
    detail: str

    @property
    def signature(self) -> tuple[str, str, str]:
        return (self.cls, self.command.split(":")[0] if self.cls != "invalid" else self.command, self.key)


@dataclass
class Outcome:
    accepted: dict[str, bool] = field(default_factory=dict)  # command -> exit 0
    failures: list[Failure] = field(default_factory=list)
    programs: dict[str, str] = field(default_factory=dict)  # target -> source
    params_total: int | None = None  # what `params --json` says
    torch_too_slow: bool = False  # the torch model took torch over 4x the limit to build: not compared


def _innermost_ttspec_frame(tb) -> str:
    where = "?"
    for frame in traceback.extract_tb(tb):
        path = frame.filename.replace("\\", "/")
        if "/ttspec/" in path:
            where = f"{path.split('/ttspec/')[-1]}:{frame.lineno}"
    return where


def _key(exc: BaseException) -> str:
    return f"{type(exc).__name__} at {_innermost_ttspec_frame(exc.__traceback__)}"


class Runner:
    """Runs one spec text through every command; keeps a private workdir and AST cache."""

    def __init__(self, work: Path, limit: float = LIMIT_S):
        self.work = work
        self.limit = limit
        work.mkdir(parents=True, exist_ok=True)
        os.environ["TTSPEC_CACHE_DIR"] = str(work / "cache")
        os.environ["TTSPEC_DEBUG"] = "1"  # main re-raises internal errors: the harness sees the traceback
        import ttspec.cli.main as cli
        from ttspec.analysis.interpreters import count_params
        from ttspec.driver import load_model

        self.cli, self.count_params, self.load_model = cli, count_params, load_model
        self.torch = None
        self.serial = 0
        self.check_torch_models = True

    def _torch(self):
        if self.torch is None:
            import torch

            with torch.device("meta"):  # torch imports torch._dynamo on first init: not under the time limit
                torch.nn.init.normal_(torch.nn.Linear(4, 4).weight)
                torch.nn.Embedding(4, 4)
            self.torch = torch
        return self.torch

    def _main(self, argv: list[str]) -> tuple[int | None, str, BaseException | None, float]:
        out = io.StringIO()
        start = time.monotonic()
        exc = None
        rc = None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), time_limit(self.limit):
                rc = self.cli.main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except (Exception, Timeout) as e:  # noqa: BLE001 - a ttspec bug, reported
            exc = e
        return rc, out.getvalue(), exc, time.monotonic() - start

    def run(self, data: bytes, only: str | None = None) -> Outcome:
        self.serial += 1
        path = self.work / "case.arch"
        path.write_bytes(data)
        outcome = Outcome()
        commands = COMMANDS if only is None else tuple(c for c in COMMANDS if c.split(":")[0] == only
                                                       or c == only or only == "compile:torch" and c == "params-json")
        for command in commands:
            name, _, target = command.partition(":")
            argv = ["params", str(path), "--json"] if name == "params-json" else [name, str(path)]
            out_file = self.work / f"out_{target}.py"
            if name == "plan":
                argv += ["--target", target]
            elif target:
                argv += ["--target", target, "-o", str(out_file)]
                out_file.unlink(missing_ok=True)
            rc, text, exc, _ = self._main(argv)
            if isinstance(exc, Timeout):
                rc2, _, exc2, _ = self._main(argv)  # a loaded machine: confirm before reporting
                if isinstance(exc2, Timeout):
                    outcome.failures.append(Failure("hang", command, f"over {self.limit:g} s",
                                                    f"over {self.limit:g} s twice; interrupted at {_key(exc2)}"))
                    continue
                rc, text, exc = rc2, "", exc2
            if exc is not None:
                detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                outcome.failures.append(Failure("internal", command, _key(exc), detail))
                continue
            if rc == 70 or "Traceback (most recent call last)" in text:
                outcome.failures.append(Failure("internal", command, f"exit {rc}", text[-2000:]))
                continue
            if rc not in (0, 1):
                outcome.failures.append(Failure("exit", command, f"exit {rc}", text[-2000:]))
                continue
            if rc == 1 and "error" not in text:
                outcome.failures.append(Failure("nodiag", command, "exit 1 without an error", text[-2000:]))
            outcome.accepted[command] = rc == 0
            if rc == 0 and name == "params-json":
                try:
                    outcome.params_total = json.loads(text)["total"]
                except (ValueError, KeyError, TypeError) as e:
                    outcome.failures.append(Failure("invalid", command, f"params --json: {type(e).__name__}",
                                                    text[-2000:]))
            if rc == 0 and name == "compile":
                source = out_file.read_text(encoding="utf-8")
                outcome.programs[target] = source
                self._check_program(command, target, source, path, outcome)
        return outcome

    def _check_program(self, command: str, target: str, source: str, path: Path, outcome: Outcome) -> None:
        try:
            compile(source, f"<{target}>", "exec")
        except SyntaxError as e:
            outcome.failures.append(Failure("invalid", command, f"SyntaxError: {e.msg}", f"{e}\n"))
            return
        if target != "torch" or not self.check_torch_models:
            return
        try:
            with time_limit(self.limit * 4):
                model = self.load_model(path)
                expected = self.count_params(model.graph)
                got = self._torch_count(source, model)
        except Timeout:  # torch's own time (100,000 layers take torch seconds on any device): not ttspec's
            outcome.torch_too_slow = True
            return
        except Exception as e:  # noqa: BLE001
            detail = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            outcome.failures.append(Failure("invalid", "torch-model", f"{type(e).__name__}: {str(e)[:80]}"
                                            if "ttspec_generated" in detail else _key(e), detail))
            return
        if got != expected or outcome.params_total not in (None, expected):
            outcome.failures.append(Failure("mismatch", "torch-model", "count",
                                            f"torch model {got:,} parameters, count_params {expected:,}, "
                                            f"params --json {outcome.params_total}"))

    def _torch_count(self, source: str, model) -> int:
        from ttspec.runtime.runner import load_program, root_class

        torch = self._torch()
        name = f"fuzz{self.serial}"
        module = load_program(source, name)
        try:
            with torch.device("meta"):
                net = root_class(module, model)()
            return sum(p.numel() for p in net.parameters())  # a tied tensor counts once, as params counts it
        finally:
            sys.modules.pop(f"ttspec_generated_{name}", None)
            shutil.rmtree(Path(module.__file__).parent, ignore_errors=True)


# ---------------------------------------------------------------- hypothesis: specs from the grammar
HOSTILE_NAMES = (
    # Python keywords, soft keywords, builtins
    "class", "def", "lambda", "None", "True", "False", "_", "_1", "match", "type", "print", "int", "len", "self",
    "__init__", "__class__", "super", "object",
    # the programs' imports, helpers, nn.Module members, generated locals
    "F", "nn", "torch", "ttnn", "math", "re", "Rotary", "Weights", "TILE", "LABELS", "split_heads", "attend",
    "forward", "training", "eval", "to", "state_dict", "parameters", "device", "weight", "bias", "layer", "seq",
    "batch", "padded", "mapper", "load_weights", "load_ttspec_weights", "ttspec_name", "rotary", "h", "x", "y",
    # op ids, stdlib components, spec keywords
    "add", "mul", "linear", "embedding", "rms_norm", "attention", "mlp", "decoder", "Decoder", "rmsnorm", "lm_head",
    "repeat", "model", "let", "input", "output", "block", "kind", "import", "none", "true", "false", "all_gather",
    "qkv_part", "split_qkv_heads",
    # odd spellings
    "a" * 300, "A_" * 40, "é", "naïve", "π", "x\u0301", "ﬁ", "_" * 3, "l0", "O0",
)
PLAIN_NAMES = ("a", "b", "c", "foo", "bar", "blk", "layer0", "norm", "ffn", "attn", "proj", "mix", "up", "down")
HUGE = ("0", "-1", "7", "1000000000000", "9223372036854775807", "9223372036854775808", "10**30", "2**63",
        "1" * 40, "99999", "3_000_000", "1e999", "-1e999", "1e-400", "0.0")
WIDTHS = (32, 64, 64, 96, 128, 128, 256)


HOSTILITY = [2]  # per spec: 0 draws only plausible values, 1 half the usual hostile ones, 2 all
BLOCK_PARAMS: dict[str, str] = {}  # per spec: a block's int parameter, which repeats may vary per layer


def _pick(draw, plausible, hostile, p_hostile: int = 2):
    """From `plausible` mostly, from `hostile` about p_hostile times in 10 (scaled by HOSTILITY)."""
    if hostile and HOSTILITY[0] and draw(st.integers(0, 19)) < p_hostile * HOSTILITY[0]:
        return draw(st.sampled_from(hostile))
    return draw(st.sampled_from(plausible))


def _name(draw, p_hostile: int = 3) -> str:
    return _pick(draw, PLAIN_NAMES, HOSTILE_NAMES, p_hostile)


def _int(draw, plausible) -> str:
    return str(_pick(draw, plausible, HUGE, 1))


def _label(draw, used: set) -> str:
    if draw(st.integers(0, 9)) < 2:
        return ""
    n = _name(draw)
    if n in used and (not HOSTILITY[0] or draw(st.booleans())):
        n = f"{n}{len(used)}"
    used.add(n)
    return f" as {n}"


def _bool(draw) -> str:
    return _pick(draw, ("true", "false"), ("1", "none", '"yes"', "0.5"), 1)


@st.composite
def _component(draw, x: str, d: str, labels: set, blocks: list[str]) -> str:
    """One width-preserving statement on `x` (plus, rarely, one that is not)."""
    heads = _int(draw, (1, 2, 4, 8))
    kind = draw(st.integers(0, 15))
    lab = _label(draw, labels)
    if kind == 0:
        eps = _pick(draw, ("1e-5", "1e-6", "0.00001"), ("0", "-1.0", "1e999", '"x"'), 1)
        return f"{x} = rmsnorm({x}, eps = {eps}){lab}"
    if kind == 1:
        return f"{x} = layernorm({x}, bias = {_bool(draw)}){lab}"
    if kind in (2, 3):
        extra = []
        if draw(st.booleans()):
            extra.append(f"kv_heads = {_int(draw, (1, 2, 4))}")
        if draw(st.booleans()):
            theta = _pick(draw, ("10000.0", "500000.0", "1.0"), ("0.0", "-5.0", "1e999"), 1)
            frac = _pick(draw, ("1.0", "0.5", "0.25"), ("0.3", "0.0", "2.0"), 1)
            extra.append(f"rope = rope(theta = {theta}, fraction = {frac})")
        if draw(st.booleans()):
            extra.append(f"qkv_bias = {_bool(draw)}")
        if draw(st.integers(0, 4)) == 0:
            extra.append(f"head_dim = {_int(draw, (16, 32, 64))}")
        if draw(st.integers(0, 5)) == 0:
            extra.append(f"scale = {_pick(draw, ('0.125', 'none'), ('0.0', '-1.0'), 3)}")
        if draw(st.integers(0, 5)) == 0:
            extra.append(f"causal = {_bool(draw)}")
        args = ", ".join([x, f"heads = {heads}", *extra])
        return f"{x} = {x} + attention({args}){lab}"
    if kind == 4:
        act = _pick(draw, ('"gelu"', '"relu"', '"silu"', '"gelu_tanh"'), ('"tanh"', '""', "3"), 1)
        return f"{x} = {x} + mlp({x}, hidden = {_int(draw, (64, 128, 256))}, act = {act}){lab}"
    if kind == 5:
        return f"{x} = {x} + swiglu({x}, hidden = {_int(draw, (64, 96, 256))}){lab}"
    if kind == 6:
        return f"{x} = {x} + geglu({x}, hidden = {_int(draw, (64, 128))}, approximate = {_bool(draw)}){lab}"
    if kind == 7:
        w = _int(draw, (32, 64, 128))
        return f"{x} = linear(linear({x}, {w}, bias = {_bool(draw)}){lab}, {d}){_label(draw, labels)}"
    if kind == 8:
        return f"{x} = {draw(st.sampled_from(('relu', 'gelu', 'silu', 'gelu_tanh')))}({x})"
    if kind == 9:
        v = _name(draw)
        return f"{v} = rmsnorm({x}){lab}\n    {x} = {x} + {v} * {v}"
    if kind == 10:
        return f"{x} = sinusoidal({x}, base = {_pick(draw, ('10000.0',), ('-5.0', '0.0', '1e999'), 2)})"
    if kind == 11:
        return f"{x} = learned_positions({x}, {_int(draw, (64, 128, 1024))}){lab}"
    if kind == 12 and blocks:
        b = draw(st.sampled_from(blocks))
        if draw(st.booleans()):
            per_layer = ""
            if b in BLOCK_PARAMS and draw(st.booleans()):  # per-layer values: layer variants
                value = _pick(draw, ("[1, 2][layer % 2]", "[4, 2, 4][layer % 3]", "[1, 2, 3][-1 - layer % 3]"),
                              ("[1, 2][layer]", "[1, 2][1.0]", "[][0]", "layer", "[layer][0] * 2"), 2)
                per_layer = f", {BLOCK_PARAMS[b]} = {value}"
            return f"{x} = repeat({_int(draw, (1, 2, 3))}) {b}({x}{per_layer}){lab}"
        return f"{x} = {b}({x}){lab}"
    if kind == 13:
        op = draw(st.sampled_from(("rms_norm", "layer_norm", "split_heads", "merge_heads", "attend",
                                   "all_gather", "qkv_part", "split_qkv_heads", "position_embedding",
                                   "sinusoidal_positions", "tied_linear", "embedding", "apply_rope")))
        return f"{x} = {op}({x}, {_int(draw, (1, 2, 64))}){lab}"
    if kind == 14:
        return f"{x} = linear({x}, {_int(draw, (32, 128))}){lab}"  # changes the width: usually refused
    return f"if {draw(st.sampled_from(('true', 'false', '1 < 2', d + ' > 64')))} {{ {x} = rmsnorm({x}){lab} }}"


@st.composite
def long_form(draw) -> str:
    HOSTILITY[0] = draw(st.sampled_from((0, 0, 1, 2)))
    BLOCK_PARAMS.clear()
    lines = []
    model = _name(draw)
    lines.append(f"model {model}")
    if draw(st.integers(0, 7)) == 0:
        lines.append(f"family {_pick(draw, ('llama', 'gpt2', 'phi'), ('x', 'None', 'llama'), 3)}")
    if draw(st.integers(0, 3)) == 0:
        lines.append(f"target {_pick(draw, ('n150', 'n300', 'p150'), ('torch', 'x', 'galaxy'), 3)}")
    d_val = draw(st.sampled_from(WIDTHS))
    d = "d"
    lines.append(f"let d = {_int(draw, (d_val,))}")
    vocab = _int(draw, (64, 256, 512))
    max_seq = _int(draw, (64, 256, 1024))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(("+", "*", "//", "/", "-", "%", "**")))
        lines.append(f"let {_name(draw)} = {_int(draw, (1, 2, 8, 64))} {op} {_int(draw, (1, 2, 4))}")
    inp = _pick(draw, ("tokens",), HOSTILE_NAMES, 2)
    lines.append(f"input {inp}: int32[batch, seq] where seq <= {max_seq}")
    labels: set[str] = set()
    blocks: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        b = _name(draw)
        if b in blocks:
            continue
        kind = f" kind {_pick(draw, ('decoder', 'mlp', 'attention', 'norm'), ('x', 'class'), 2)}" \
            if draw(st.booleans()) else ""
        params = ["x: [batch, seq, d]"]
        if draw(st.integers(0, 3)) == 0:
            BLOCK_PARAMS[b] = _name(draw)
            params.append(f"{BLOCK_PARAMS[b]}: int = {_int(draw, (1, 2, 4))}")
        body_labels: set[str] = set()
        body = [draw(_component("x", d, body_labels, list(blocks))) for _ in range(draw(st.integers(0, 3)))]
        ret = "[batch, seq, d]" if draw(st.integers(0, 9)) else "[batch, seq, 2 * d]"
        lines.append(f"block {b}({', '.join(params)}) -> {ret}{kind} {{")
        lines += [f"    {s}" for s in body]
        lines.append("    return x\n}")
        blocks.append(b)
    emb = _label(draw, labels) or " as embedding"
    lines.append(f"h = token_embedding({inp}, {vocab}, d){emb}")
    for _ in range(draw(st.integers(0, 6))):
        lines.append(draw(_component("h", d, labels, blocks)))
    head = []
    if draw(st.integers(0, 2)) == 0:
        head.append(f"tied = {emb.split()[-1] if draw(st.integers(0, 4)) else _name(draw)}")
    if draw(st.integers(0, 3)) == 0:
        head.append(f"bias = {_bool(draw)}")
    out = _pick(draw, ("logits",), HOSTILE_NAMES, 1)
    lines.append(f"output {out} = lm_head(h, {vocab}{''.join(', ' + a for a in head)})")
    if draw(st.integers(0, 9)) == 0:
        lines.append(f"output {_name(draw)} = rmsnorm(h)")
    return "\n".join(lines) + "\n"


@st.composite
def short_form(draw) -> str:
    HOSTILITY[0] = draw(st.sampled_from((0, 0, 1, 2)))
    lines = [f"{_pick(draw, ('tiny', 'nano-trickster', 'm'), ('class', 'None', 'a' * 300, 'é'), 2)}:"]
    values = {"vocab_size": (64, 256), "hidden_dim": (64, 128, 256), "num_layers": (1, 2), "num_heads": (2, 4, 8),
              "mlp_dim": (128, 256), "max_seq_len": (64, 512), "num_kv_heads": (1, 2)}
    for key, plaus in values.items():
        if key == "num_kv_heads" and draw(st.booleans()) or draw(st.integers(0, 19)) == 0:
            continue
        lines.append(f"  {key}: {_int(draw, plaus)}")
    for key, plaus, hostile in (("family", ("llama", "gpt2"), ("phi", "x", "")),
                                ("rope_theta", ("10000.0", "500000"), ("inf", "nan", "-1", "0", " " * 50)),
                                ("norm_eps", ("1e-5", "1e-6"), ("0", "-1", "nan")),
                                ("tie_embeddings", ("true", "false"), ("yes", "2", "")),
                                ("target", ("n150", "n300"), ("torch", "x"))):
        if draw(st.integers(0, 2)) == 0:
            lines.append(f"  {key}: {_pick(draw, plaus, hostile, 3)}")
    if HOSTILITY[0] and draw(st.integers(0, 9)) == 0:
        lines.append(f"  {_name(draw)}: 1")
    return "\n".join(lines) + "\n"


@st.composite
def stress(draw) -> str:
    """The size and structure attacks of issue 9, class 3 and 4: deep block chains each calling the
    previous one twice, huge repeats, self and missing imports, deep parentheses, shard overrides."""
    HOSTILITY[0] = 1
    lines = [f"model {_name(draw, 1)}"]
    how = draw(st.integers(0, 5))
    if how == 0:
        lines.append(draw(st.sampled_from(('import "case.arch"', 'import "missing.arch"', 'import "../case.arch"',
                                           'import "/etc/passwd"', 'import ""', 'import "."'))))
    lines += ["let d = 64", "input tokens: int32[batch, seq] where seq <= 64",
              "h = token_embedding(tokens, 64, d) as embedding"]
    if how in (1, 2):  # a chain of blocks, each instantiating the previous twice: 2**depth instances
        depth = draw(st.integers(1, 40))
        lines.insert(2, "block b0(x: [batch, seq, d]) -> [batch, seq, d] {\n    return x + rmsnorm(x) as n\n}")
        for i in range(1, depth + 1):
            lines.insert(2 + i, f"block b{i}(x: [batch, seq, d]) -> [batch, seq, d] {{\n"
                                f"    x = b{i - 1}(x) as p\n    return b{i - 1}(x) as q\n}}")
        call = f"b{depth}(h)" if how == 1 else f"repeat({_int(draw, (2, 100, 100000))}) b{depth}(h)"
        lines.append(f"h = {call} as top")
    if how == 3:  # a huge repeat of a real decoder
        lines.insert(2, "block dec(x: [batch, seq, d]) -> [batch, seq, d] kind decoder {\n"
                        "    x = x + attention(rmsnorm(x) as an, heads = 2) as attn\n"
                        "    return x + swiglu(rmsnorm(x) as mn, hidden = 64) as mlp\n}")
        lines.append(f"h = repeat({_int(draw, (1000, 100000, 99999))}) dec(h) as layers")
    if how == 4:  # deep parentheses and long expressions
        n = draw(st.integers(1, 200))
        lines.append(f"let k = {'(' * n}1{')' * n}")
        lines.append("let j = " + " + ".join(["1"] * draw(st.integers(1, 3000))))
    if how == 5:
        lines.append(f'shard "{draw(st.sampled_from(("*", "embedding*", "[", "**", "", "a" * 500)))}" '
                     f'{draw(st.sampled_from(("replicate", "column", "row", "diagonal")))}')
    lines.append("output logits = lm_head(h, 64)")
    return "\n".join(lines) + "\n"


SPECS = st.one_of(long_form(), long_form(), long_form(), short_form())
SPECS_WITH_STRESS = st.one_of(long_form(), long_form(), long_form(), short_form(), stress())


# ---------------------------------------------------------------- mutations of the shipped specs
TOKEN = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9_.eE+-]*|\"[^\"\n]*\"|\*\*|//|[<>=!]=|\S")
REPLACEMENTS = [n.encode() for n in HOSTILE_NAMES[:60]] + [b"(", b")", b"{", b"}", b",", b"=", b"as", b"*",
                                                            b"repeat", b"block", b"->", b"\"", b"#", b"\r",
                                                            b"\x0c", b"\xc2\x85", b"\x1b[2J", b"\x00"]


def corpus() -> list[bytes]:
    paths = sorted((ROOT / "specs").glob("*.arch")) + sorted((ROOT / "specs" / "bad").glob("*.arch"))
    return [p.read_bytes() for p in paths]


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = rng.choice(seeds)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        data = _mutate_once(rng, data, seeds)
    return data


def _mutate_once(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    how = rng.randrange(8)
    tokens = list(TOKEN.finditer(data))
    if how <= 2 and tokens:
        t = rng.choice(tokens)
        if how == 0:  # delete a token
            return data[:t.start()] + data[t.end():]
        if how == 1:  # duplicate a token
            return data[:t.end()] + b" " + t.group() + data[t.end():]
        return data[:t.start()] + rng.choice(REPLACEMENTS) + data[t.end():]  # replace a token
    if how == 3:  # perturb a number
        nums = [t for t in tokens if t.group()[:1].isdigit()]
        if nums:
            t = rng.choice(nums)
            new = rng.choice([b"0", b"1", b"3", b"7", b"1000000000000", b"9" * 30, b"1e999", b"0.3", b"2**62",
                              str(int(float(t.group().replace(b"_", b"")) * rng.choice((2, 3, 0.5)) if
                                      re.fullmatch(rb"[0-9_]+", t.group()) else 1)).encode()])
            return data[:t.start()] + new + data[t.end():]
    lines = data.split(b"\n")
    if how == 4 and len(lines) > 1:  # shuffle: move a line
        line = lines.pop(rng.randrange(len(lines)))
        lines.insert(rng.randrange(len(lines) + 1), line)
        return b"\n".join(lines)
    if how == 5 and data:  # flip a byte
        i = rng.randrange(len(data))
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if how == 6:  # splice a line from another spec
        other = rng.choice(seeds).split(b"\n")
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(other))
        return b"\n".join(lines)
    if lines:  # duplicate a line (blocks defined twice, repeated statements)
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    return b"\n".join(lines)


# ---------------------------------------------------------------- minimization
def minimize(runner: Runner, data: bytes, failure: Failure, budget_s: float = 30.0) -> bytes:
    """Delete lines, then tokens, while the same failure (class, command, key) reproduces."""
    deadline = time.monotonic() + budget_s
    only = failure.command.split(":")[0] if failure.command != "torch-model" else "compile:torch"

    def same(candidate: bytes) -> bool:
        if time.monotonic() > deadline:
            return False
        out = runner.run(candidate, only=only)
        return any(f.signature == failure.signature for f in out.failures)

    for split in (lambda d: d.split(b"\n"), None):
        changed = True
        while changed and time.monotonic() < deadline:
            changed = False
            if split is not None:
                parts, joiner = data.split(b"\n"), b"\n"
            else:
                parts, joiner = [t.group() for t in TOKEN.finditer(data)], b" "
            chunk = max(1, len(parts) // 2)
            while chunk >= 1 and time.monotonic() < deadline:
                i = len(parts) - chunk
                while i >= 0:
                    candidate = joiner.join(parts[:i] + parts[i + chunk:])
                    if len(candidate) < len(data) and same(candidate):
                        parts = parts[:i] + parts[i + chunk:]
                        data = candidate
                        changed = True
                    i -= chunk
                chunk //= 2
    return data


# ---------------------------------------------------------------- the campaign
@dataclass
class Stats:
    cases: int = 0
    surfaces: Counter = field(default_factory=Counter)  # surface -> cases (spec: the language)
    surface_exits: dict = field(default_factory=dict)  # surface -> {exit status: cases}
    hf_compared: int = 0  # imports whose parameter count was compared with transformers'
    generated: int = 0
    mutated: int = 0
    accepted: Counter = field(default_factory=Counter)  # command -> cases it accepted
    fully_accepted: int = 0
    refused: int = 0  # refused with a diagnostic by check
    failures: Counter = field(default_factory=Counter)  # class -> cases
    findings: dict = field(default_factory=dict)  # signature -> {count, first reproducer file}
    programs_linted: int = 0
    torch_too_slow: int = 0


class Campaign:
    def __init__(self, out: Path, seed: int, known: set[tuple[str, str, str]] = frozenset(), minimize_s: float = 30.0,
                 ruff_sample: int = 400, stress: bool = False, surfaces: tuple[str, ...] = ("spec",) + SURFACES):
        self.out = out
        self.surfaces = surfaces
        self.stress = stress
        self.seed = seed
        self.known = known
        self.minimize_s = minimize_s
        self.ruff_sample = ruff_sample
        self.findings_dir = out / "findings"
        self.lint_dir = out / "lint"
        for d in (self.findings_dir, self.lint_dir):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        self.work = Path(tempfile.mkdtemp(prefix="ttspec-fuzz-"))
        self.runner = Runner(self.work)
        self.runner._torch()
        self.stats = Stats()
        self.lint_cases: dict[str, bytes] = {}
        self.surface_rotation = [s for s in ROTATION if s in surfaces]
        self.forked = None
        if self.surface_rotation:
            from fuzz_surfaces import Bases, ForkRunner

            self.forked = ForkRunner(self.work / "surfaces", Bases(self.work))
        self.surface_index = 0

    def case(self, data: bytes, origin: str) -> None:
        s = self.stats
        s.cases += 1
        s.surfaces["spec"] += 1
        outcome = self.runner.run(data)
        if outcome.accepted.get("check"):
            s.fully_accepted += all(outcome.accepted.values())
        elif "check" in outcome.accepted:
            s.refused += 1
        for command, ok in outcome.accepted.items():
            s.accepted[command] += ok
        classes = set()
        for f in outcome.failures:
            classes.add(f.cls)
            self.record(f, data, origin)
        for cls in classes:
            s.failures[cls] += 1
        s.torch_too_slow += outcome.torch_too_slow
        for target, source in outcome.programs.items():
            if target != "torch" and len(self.lint_cases) < self.ruff_sample and s.cases % 3 == 0:
                name = f"c{s.cases}_{target}.py"
                (self.lint_dir / name).write_text(source, encoding="utf-8")
                self.lint_cases[name] = data

    def surface_case(self) -> None:
        """The next case of the surfaces' rotation, drawn from (seed, its index) alone."""
        from fuzz_surfaces import draw, surface_draw_rng

        i = self.surface_index
        self.surface_index += 1
        surface = self.surface_rotation[i % len(self.surface_rotation)]
        case = draw(surface, surface_draw_rng(self.seed, i), self.forked.bases)
        s = self.stats
        s.cases += 1
        s.surfaces[surface] += 1
        outcome = self.forked.run(case)
        exits = s.surface_exits.setdefault(surface, Counter())
        exits[str(outcome.rc) if outcome.rc is not None else "none"] += 1
        s.hf_compared += outcome.hf_compared
        for cls in {f.cls for f in outcome.failures}:
            s.failures[cls] += 1
        for f in outcome.failures:
            self.record_surface(f, case, i)

    def record_surface(self, f, case, index: int) -> None:
        from fuzz_surfaces import write_reproducer

        sig = f.signature
        entry = self.stats.findings.get(sig)
        if entry is not None:
            entry["count"] += 1
            return
        n = len(self.stats.findings) + 1
        stem = f"{f.cls}-{n:03d}"
        entry = {"count": 1, "class": f.cls, "command": f.command, "key": f.key, "origin": f"{case.surface} #{index}",
                 "surface": case.surface, "known": sig in self.known, "file": None}
        self.stats.findings[sig] = entry
        small = self.forked.minimize(case, f, self.minimize_s) if f.cls not in ("leak",) else case
        again = [g for g in self.forked.run(small).failures if g.signature == sig]
        detail = again[0].detail if again else f.detail
        folder = self.findings_dir / stem
        command = write_reproducer(self.forked, small, folder)
        (self.findings_dir / f"{stem}.txt").write_text(
            f"class: {f.cls}\ncommand: {f.command}\nkey: {f.key}\nsurface: {case.surface} (case #{index} of the "
            f"rotation, seed {self.seed})\nreproduce: {command}\ncase: {json.dumps(small.to_json())[:4000]}\n\n"
            f"{detail}\n", encoding="utf-8", errors="replace")
        entry["file"] = str(folder)
        print(f"  finding {stem}: {case.surface}: {f.command}: {f.cls}: {f.key}", file=sys.stderr, flush=True)

    def record(self, f: Failure, data: bytes, origin: str) -> None:
        sig = f.signature
        entry = self.stats.findings.get(sig)
        if entry is not None:
            entry["count"] += 1
            return
        n = len(self.stats.findings) + 1
        stem = f"{f.cls}-{n:03d}"
        entry = {"count": 1, "class": f.cls, "command": f.command, "key": f.key, "origin": origin,
                 "surface": "spec", "known": sig in self.known, "file": None}
        self.stats.findings[sig] = entry
        (self.findings_dir / f"{stem}.orig.arch").write_bytes(data)
        small = minimize(self.runner, data, f, self.minimize_s) if f.cls != "invalid" or f.command != "ruff" else data
        (self.findings_dir / f"{stem}.arch").write_bytes(small)
        again = [g for g in self.runner.run(small, only=None).failures if g.signature == sig]
        detail = again[0].detail if again else f.detail
        (self.findings_dir / f"{stem}.txt").write_text(
            f"class: {f.cls}\ncommand: {f.command}\nkey: {f.key}\norigin: {origin}\n"
            f"reproduce: ttspec {self._argv(f.command)} {stem}.arch\n\n{detail}\n", encoding="utf-8")
        entry["file"] = str(self.findings_dir / f"{stem}.arch")
        print(f"  finding {stem}: {f.command}: {f.key}", file=sys.stderr, flush=True)

    @staticmethod
    def _argv(command: str) -> str:
        name, _, target = command.partition(":")
        if name == "torch-model":
            return "compile --target torch (then build the model)"
        if name == "params-json":
            return "params --json"
        return f"{name} --target {target}" if target else name

    def generated(self, n: int, chunk_seed: int, deadline: float) -> None:
        @hypothesis_seed(chunk_seed)
        @settings(max_examples=n, database=None, deadline=None, phases=(Phase.generate,),
                  suppress_health_check=list(HealthCheck))
        @given(SPECS_WITH_STRESS if self.stress else SPECS)
        def drive(text):
            if time.monotonic() < deadline:
                self.stats.generated += 1
                self.case(text.encode("utf-8"), "generated")

        drive()

    def mutated(self, n: int, rng: random.Random, seeds: list[bytes], deadline: float) -> None:
        for _ in range(n):
            if time.monotonic() >= deadline:
                return
            self.stats.mutated += 1
            self.case(mutate(rng, seeds), "mutated")

    def lint(self) -> None:
        files = sorted(self.lint_dir.glob("*.py"))
        self.stats.programs_linted = len(files)
        if not files:
            return
        ruff = [sys.executable, "-m", "ruff"]
        result = subprocess.run(ruff + ["check", "--no-cache", "--select", RUFF_SELECT, "--line-length", "120",
                                        "--output-format", "json", str(self.lint_dir)],
                                capture_output=True, text=True, cwd=self.lint_dir)
        try:
            problems = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            problems = [{"filename": "?", "code": "ruff", "message": result.stdout + result.stderr}]
        seen = set()
        for p in problems:
            name = Path(p["filename"]).name
            if (p["code"], name) in seen:
                continue
            seen.add((p["code"], name))
            target = name.rsplit("_", 1)[-1].removesuffix(".py")
            key = f"ruff {p['code']}"
            row = (p.get("location") or {}).get("row")
            lines = (self.lint_dir / name).read_text(encoding="utf-8").splitlines() if row else []
            if p["code"] == "E501" and row and re.search(r"\w{100}", lines[row - 1]):
                key += " (a spec name of 100+ characters)"  # no wrapping can help: the name itself is long
            f = Failure("invalid", f"ruff:{target}", key, f"{p['code']} {p['message']}\n")
            self.stats.failures["invalid"] += 1
            self.record(f, self.lint_cases.get(name, b""), "lint sample")

    def run(self, cases: int, seconds: float | None, chunk: int = 50) -> Stats:
        start = time.monotonic()
        deadline = start + seconds if seconds else float("inf")
        rng = random.Random(self.seed)
        seeds = corpus()
        done = 0
        i = 0
        while done < cases and time.monotonic() < deadline:
            n = min(chunk, cases - done)
            spec = n if not self.surface_rotation else 0 if "spec" not in self.surfaces else n // 2
            gen = (spec + 1) // 2
            if gen:
                self.generated(gen, self.seed * 100003 + i, deadline)
            self.mutated(spec - gen, rng, seeds, deadline)
            for _ in range(n - spec):
                if time.monotonic() >= deadline:
                    break
                self.surface_case()
            done = self.stats.cases
            i += 1
            if i % 10 == 0:
                print(f"  {done} cases, {time.monotonic() - start:.0f} s, "
                      f"{sum(e['count'] for e in self.stats.findings.values())} failures", file=sys.stderr, flush=True)
        self.lint()
        self.elapsed = time.monotonic() - start
        shutil.rmtree(self.work, ignore_errors=True)
        return self.stats

    def table(self) -> str:
        s = self.stats
        rows = [("cases", f"{s.cases:,} ({s.generated:,} specs generated, {s.mutated:,} specs mutated"
                          + "".join(f", {s.surfaces[k]:,} {k}" for k in SURFACES if k in self.surfaces) + ")"),
                ("time", f"{self.elapsed:.0f} s ({1000 * self.elapsed / max(s.cases, 1):.0f} ms a case)"),
                ("accepted by every command", f"{s.fully_accepted:,}"),
                ("accepted by check", f"{s.accepted['check']:,}"),
                ("refused with a diagnostic", f"{s.refused:,}")]
        rows += [(f"compiled for {t}", f"{s.accepted['compile:' + t]:,}") for t in TARGETS]
        rows += [(f"planned for {t}", f"{s.accepted['plan:' + t]:,}") for t in ("n150", "n300")]
        rows.append(("torch models too slow to build", f"{s.torch_too_slow:,}"))
        rows.append(("TT-NN programs linted (ruff)", f"{s.programs_linted:,}"))
        for surface in SURFACES:
            if surface in self.surfaces:
                exits = s.surface_exits.get(surface, {})
                rows.append((f"{surface} cases by exit status", ", ".join(f"{k}: {v:,}" for k, v in sorted(
                    exits.items())) or "none"))
        if "import-hf" in self.surfaces:
            rows.append(("imports counted against transformers", f"{s.hf_compared:,}"))
        for cls in CLASSES:
            rows.append((f"failures: {cls}", f"{s.failures[cls]:,}"))
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        if s.findings:
            lines.append("")
            lines.append("distinct findings:")
            for e in s.findings.values():
                lines.append(f"  {e['class']:<9} {e['surface']:<9} {e['command']:<14} x{e['count']:<5} {e['key']}"
                             f"{'  (known)' if e['known'] else ''}  {e['file'] or ''}")
        return "\n".join(lines)

    def unexpected(self) -> list[dict]:
        return [e for e in self.stats.findings.values() if not e["known"]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--out", default=str(ROOT / "bench" / "out"))
    p.add_argument("--minimize-seconds", type=float, default=30.0)
    p.add_argument("--surfaces", default=",".join(("spec",) + SURFACES),
                   help="which surfaces the campaign mixes (default all): spec (the language), " + ", ".join(SURFACES))
    p.add_argument("--stress", action="store_true",
                   help="add the size attacks (2**n block chains, huge repeats): slow while they still hang")
    args = p.parse_args(argv)
    surfaces = tuple(x.strip() for x in args.surfaces.split(",") if x.strip())
    unknown = [x for x in surfaces if x not in ("spec",) + SURFACES]
    if unknown or not surfaces:
        p.error(f"unknown surface(s) {', '.join(unknown)}; choose from spec, {', '.join(SURFACES)}")
    campaign = Campaign(Path(args.out), args.seed, minimize_s=args.minimize_seconds, stress=args.stress,
                        surfaces=surfaces)
    campaign.run(args.cases, args.seconds)
    table = campaign.table()
    print(table)
    (Path(args.out) / "summary.txt").write_text(table + "\n", encoding="utf-8")
    s = campaign.stats
    summary = {"cases": s.cases, "generated": s.generated, "mutated": s.mutated, "surfaces": dict(s.surfaces),
               "surface_exits": {k: dict(v) for k, v in s.surface_exits.items()}, "hf_compared": s.hf_compared,
               "seconds": round(campaign.elapsed, 1),
               "accepted_by_check": s.accepted["check"], "accepted_by_every_command": s.fully_accepted,
               "refused": s.refused, "compiled": {t: s.accepted["compile:" + t] for t in TARGETS},
               "planned": {t: s.accepted["plan:" + t] for t in ("n150", "n300")},
               "linted": s.programs_linted, "failures": dict(s.failures),
               "findings": list(s.findings.values())}
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 1 if campaign.unexpected() else 0


if __name__ == "__main__":
    sys.exit(main())
