"""The Python API (`import ttspec`): a thin layer over the driver and the commands' own code, for notebooks and
scripts (docs/python-api.md).

    >>> import ttspec
    >>> spec = ttspec.load("specs/nano-trickster.arch")   # a path, or the text of a spec
    >>> spec.params.total
    5180672
    >>> spec.plan("n150").fits                              # `ttspec plan --json`'s document, attribute access
    True
    >>> program = spec.compile(target="n150")              # the generated TT-NN program's source

Errors are ttspec's own: `ttspec.ArchError` for a problem in the spec (`UsageError`, a subclass, for a bad
argument such as an unknown target), with the message the command line prints; `err.render()` gives the
whole diagnostic (place, excerpt, notes, hint) exactly as `ttspec check` writes it; `err.diagnostics` every
error the checker found. Only Spec.torch_module imports torch."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..errors import ArchError, UsageError
from . import arguments as arg
from .results import Diagnostics, Plan, Report, Reports, Search

STRING_NAME = "<string>"  # the file name of a spec given as text, in diagnostics


class Params(NamedTuple):
    """Exact parameter counts: `total`, `active` per token (differs from total for mixture-of-experts
    models), and `by_kind` (attention, mlp, norm, embedding, ... as `ttspec params` groups them)."""

    total: int
    active: int
    by_kind: dict[str, int]


def _is_text(source: str | Path) -> bool:
    """A str holding a newline or a brace is a spec's text; anything else names a file."""
    return isinstance(source, str) and ("\n" in source or "{" in source)


def _load_model(source: str | Path):
    from ..driver import load_model

    if not _is_text(source):
        return load_model(source)
    from ..analysis.interpreters import verify
    from ..elaborate import elaborate
    from ..families import FAMILIES, SHORT_FORMS
    from ..frontend.parser import parse_source
    from ..frontend.source import MAX_SOURCE_BYTES, decode_source

    data = str(source).encode("utf-8", "surrogatepass")
    if len(data) > MAX_SOURCE_BYTES:
        raise ArchError(f"spec text too large: {len(data):,} bytes (the limit is {MAX_SOURCE_BYTES:,})",
                        hint="a spec this long is not a transformer description; is this the right text?")
    text = decode_source(data, STRING_NAME)
    model = elaborate(parse_source(text, STRING_NAME, short_forms=SHORT_FORMS), Path.cwd(), FAMILIES)
    verify(model)
    return model


def load(source: str | Path) -> Spec:
    """Parse, elaborate and check a spec: `source` is a path (str or Path) or the spec's text (a str with a
    newline or a `{`; its imports resolve from the current directory). Raises ArchError with the message
    `ttspec check` prints when the spec is wrong."""
    return Spec(_load_model(source))


def check(source: str | Path, *, target: str | None = None, weights_dtype: str = "bf16",
          kv_dtype: str | None = None, training: bool = False, strict: bool = False) -> Diagnostics:
    """Every diagnostic `ttspec check` gives the spec (a path or its text): all the errors the checker finds
    (it goes on past a failed statement), or, when the spec is well-formed, its warnings (the spec's own, and
    whether it fits `target`, default its `target` statement). `.ok` is what check's exit status says (with
    `strict`, warnings fail too); each item is a Diagnostic (severity, message, loc, hint, notes; `.render()` is
    the CLI's text); `.to_dict()` is `check --json`'s document. Never raises for a problem in the spec."""
    return _checked(_file_of(source), lambda _: _load_model(source), target, weights_dtype, kv_dtype, training,
                    strict)


def _file_of(source: str | Path) -> str:
    return STRING_NAME if _is_text(source) else str(source)


class Spec:
    """A checked spec (load() raised for any error; ttspec.check() reports instead): `.name`, `.file`, `.params`,
    `.compile(...)`; `.model` is the verified graph IR."""

    def __init__(self, model) -> None:
        self.model = model
        self._params: Params | None = None

    def __repr__(self) -> str:
        return f"<ttspec.Spec {self.name} ({self.params.total:,} parameters)>"

    @property
    def name(self) -> str:
        """The spec's `model NAME`."""
        return self.model.name

    @property
    def file(self) -> str:
        """The file it was read from (`<string>` for text)."""
        return self.model.file

    @property
    def params(self) -> Params:
        """Exact parameter counts (the numbers of `ttspec params`)."""
        if self._params is None:
            from ..analysis.interpreters import count_active, count_params
            from ..analysis.params_report import params_by_kind

            g = self.model.graph
            self._params = Params(count_params(g), count_active(g), params_by_kind(g))
        return self._params

    def compile(self, target: str | None = None, *, weights_dtype: str | None = None,
                mesh: tuple[int, int] | str | None = None, dp: bool = False, batch: int = 1,
                output: str | Path | None = None) -> str:
        """The generated program's source for `target` ("torch" for the PyTorch reference, or a Tenstorrent
        target such as "n150", "n300", "t3k"; default: the spec's `target` statement, else n150), as
        `ttspec compile` writes it. `weights_dtype` takes what --weights-dtype takes ("bf16", "bfloat8_b",
        "performance", "attention=bfloat8_b,mlp=bfloat4_b"); `mesh` a (rows, cols) tuple or "1x4".
        With `output`, the program is also written there (atomically); the text is returned either way."""
        from ..driver import compile_source
        from ..output import write_output
        from ..targets import DEFAULT_TARGET, TORCH, get_target
        from ..weight_formats import BF16, parse

        name = target or (self.model.target[0] if self.model.target else DEFAULT_TARGET)
        chosen = TORCH if name == TORCH.name else get_target(name)
        formats = BF16 if weights_dtype is None else parse(weights_dtype)
        text = compile_source(self.model, self.file, chosen, formats, arg.mesh(mesh), dp, batch)
        if output is not None:
            write_output(text, str(output))
        return text

    def check(self, *, target: str | None = None, weights_dtype: str = "bf16", kv_dtype: str | None = None,
              training: bool = False, strict: bool = False) -> Diagnostics:
        """The spec's warnings as `ttspec check` gives them (see ttspec.check): the spec's own, and whether it
        fits `target` (default: its `target` statement) in `weights_dtype`, and with `training` when training."""
        return _checked(self.file, lambda _: self.model, target, weights_dtype, kv_dtype, training, strict)

    def plan(self, target: str | None = None, *, weights_dtype: str | None = None, kv_dtype: str | None = None,
             ccl_dtype: str | None = None, batch: int | None = None, seq: int | None = None,
             mesh: tuple[int, int] | str | None = None, dp: bool = False, strategy: str | None = None) -> Plan:
        """`ttspec plan --target TARGET --json`'s document as a Plan (attribute access, `.to_dict()`, str() the
        command's text): memory per chip, whether it fits, the largest context and batch, on a mesh the sharding
        plan. `target` defaults to the spec's `target` statement, else n150; the keywords take what the
        options of the same names take (mesh (1, 4) or "1x4", strategy "1d" or "2d"). Raises ArchError where
        the command exits 1 (heads that do not split over the mesh, say) and UsageError where it exits 2."""
        from ..cli.commands.plan import plan_data
        from ..cli.shared import refuse_options_that_cannot_apply

        args = arg.namespace(self.file, target=arg.device_target(target or self._default_target()),
                             weights_dtype=arg.weights_dtype(weights_dtype), kv_dtype=arg.kv_dtype(kv_dtype),
                             ccl_dtype=arg.ccl_dtype(ccl_dtype), batch=arg.positive("batch", batch),
                             seq=arg.positive("seq", seq), mesh=arg.mesh(mesh), dp=dp,
                             strategy=arg.strategy(strategy))
        refuse_options_that_cannot_apply(args, [args.target])
        return Plan(plan_data(self.model, args))

    def search(self, target: str | None = None, *, objective: str = "latency", top: int = 5,
               min_tokens_per_s_per_user: float | None = None, max_ttft_ms: float | None = None,
               weights_dtype: str | None = None, kv_dtype: str | None = None, ccl_dtype: str | None = None,
               batch: int | None = None, seq: int | None = None, mesh: tuple[int, int] | str | None = None,
               dp: bool = False, strategy: str | None = None) -> Search:
        """`ttspec plan --target TARGET --search --json` as a Search: the plans the target allows (sub-mesh,
        tensor-parallel strategy, data parallelism, weight format per kind, batch) that fit and meet the floors,
        ranked by `objective` ("latency": decode tokens/s per user; "throughput": tokens/s at the batch), the best
        `top`; the other keywords given fix those choices, as the options do. Raises ArchError when no plan fits."""
        from ..cli.commands.plan import search_data
        from ..cli.shared import plan_best_command, refuse_options_that_cannot_apply

        if objective not in ("latency", "throughput"):
            raise UsageError(f"objective: expected 'latency' or 'throughput', got {objective!r}")
        args = arg.namespace(self.file, target=arg.device_target(target or self._default_target()),
                             objective=objective, top=arg.positive("top", top),
                             min_tokens_per_s_per_user=arg.positive_number("min_tokens_per_s_per_user",
                                                                           min_tokens_per_s_per_user),
                             max_ttft_ms=arg.positive_number("max_ttft_ms", max_ttft_ms), search=True,
                             weights_dtype=arg.weights_dtype(weights_dtype), kv_dtype=arg.kv_dtype(kv_dtype),
                             ccl_dtype=arg.ccl_dtype(ccl_dtype), batch=arg.positive("batch", batch),
                             seq=arg.positive("seq", seq), mesh=arg.mesh(mesh), dp=dp, strategy=arg.strategy(strategy))
        refuse_options_that_cannot_apply(args, [args.target], search=True)
        return Search(search_data(self.model, args), plan_best_command(args, args.target))

    def report(self, targets: str | list[str] | None = None, *, weights_dtype: str = "bf16",
               kv_dtype: str | None = None, ccl_dtype: str | None = None, batch: int = 1, seq: int | None = None,
               prompt: int | None = None, mesh: tuple[int, int] | str | None = None, dp: bool = False,
               strategy: str | None = None, html: str | Path | None = None) -> Report | Reports:
        """`ttspec report --json`'s modelled prefill and decode times: a Report for one target named ("n150", or
        the default), Reports (a list, in the order given) for a comma list or a list ("n150,n300", ["n150"]).
        A target that cannot take the model gives a Report whose `.refused` says why (the others are still
        reported; when none can, the first one's error is raised with the others in `.diagnostics`). `html=PATH`
        also writes the HTML report. The keywords take what the command's options take; `targets` defaults to the
        spec's `target`, else n150."""
        from ..cli.commands.report import refuse_report_options, report_rows

        chosen = arg.device_targets(targets if targets is not None else self._default_target())
        args = arg.namespace(self.file, target=chosen, weights_dtype=arg.weights_dtype(weights_dtype),
                             kv_dtype=arg.kv_dtype(kv_dtype), ccl_dtype=arg.ccl_dtype(ccl_dtype),
                             batch=arg.positive("batch", batch), seq=arg.positive("seq", seq),
                             prompt=arg.positive("prompt", prompt), mesh=arg.mesh(mesh), dp=dp,
                             strategy=arg.strategy(strategy), html=None if html is None else str(html))
        refuse_report_options(args)
        rows, refused = report_rows(self.model, args)
        if refused and len(refused) == len(rows):
            from ..elaborate.recovery import combined

            raise combined(list(refused.values()))
        one = isinstance(targets, str) and "," not in targets or targets is None
        return Report(rows[0]) if one else Reports(Report(r) for r in rows)

    def graph(self, format: str = "mermaid") -> str:
        """The architecture as `ttspec graph` draws it: mermaid (default) or dot source."""
        from ..reports.diagram import to_dot, to_mermaid

        if format not in ("mermaid", "dot"):
            raise UsageError(f"graph format {format!r}: expected 'mermaid' or 'dot'")
        return to_mermaid(self.model) if format == "mermaid" else to_dot(self.model)

    def torch_module(self, weights: str | Path | None = None, *, seed: int | None = None,
                     weights_dtype: str | None = None):
        """The PyTorch reference as an nn.Module: the class `ttspec compile --target torch` generates,
        instantiated; its forward takes token ids [batch, seq] and gives logits. Its weights: torch's default
        initialisation; `seed=N` the seeded random weights `ttspec run --mode torch --seed N` uses; or
        `weights=PATH` a checkpoint as `--weights` takes it (ttspec's names, or HF's for a spec with a family),
        then in eval mode. `weights_dtype` rounds the weight matrices to those block floats, as a device stores
        them. Needs torch: `pip install 'ttspec[torch]'`."""
        from .torch_module import build

        return build(self.model, self.file, None if weights is None else str(weights), seed,
                     arg.weights_dtype(weights_dtype))

    def _default_target(self) -> str:
        from ..targets import DEFAULT_TARGET

        return self.model.target[0] if self.model.target else DEFAULT_TARGET


def _checked(file: str, load, target, weights_dtype, kv_dtype, training: bool, strict: bool) -> Diagnostics:
    """`ttspec check`'s own code (check_one) on one spec, `load` giving its model."""
    from ..cli.commands.check import check_one

    args = arg.namespace(file, target=None if target is None else arg.device_target(target),
                         weights_dtype=arg.weights_dtype(weights_dtype), kv_dtype=arg.kv_dtype(kv_dtype),
                         training=training, strict=strict)
    result = check_one(file, args, load=load)
    return Diagnostics(result.diagnostics, result.ok, result.spec, result.model)


__all__ = ["Diagnostics", "Params", "Plan", "Report", "Reports", "Search", "Spec", "check", "load"]
