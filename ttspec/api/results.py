"""What Spec.plan, Spec.report and ttspec.check return: the documents of `ttspec plan --json`, `report --json`
and `check --json` (docs/plan-json.md, report-json.md, check-json.md) with attribute access, `.to_dict()` for the
JSON itself, and the command's text output as `str()` (a notebook shows it through `_repr_markdown_`)."""

from __future__ import annotations

import copy
import json

from ..errors import Diagnostic, SourceCache


def _wrap(value):
    if isinstance(value, dict):
        return Result(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class Result:
    """A read-only view of one JSON document: `r.memory_per_chip.total` or `r["memory_per_chip"]["total"]`
    (nested objects are Results, arrays lists); `r.to_dict()` is the document (a copy)."""

    def __init__(self, data: dict) -> None:
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str):
        try:
            return _wrap(self._data[name])
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}; fields: "
                                 + ", ".join(self._data)) from None

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __getitem__(self, key: str):
        return _wrap(self._data[key])

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __eq__(self, other) -> bool:
        return isinstance(other, Result) and self._data == other._data

    __hash__ = None

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self):
        return self._data.keys()

    def items(self):
        return [(k, _wrap(v)) for k, v in self._data.items()]

    def get(self, key: str, default=None):
        return _wrap(self._data[key]) if key in self._data else default

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *(k for k in self._data if k.isidentifier())})

    def to_dict(self) -> dict:
        return copy.deepcopy(self._data)

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self._data, indent=indent)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def _repr_markdown_(self) -> str:
        return f"```text\n{self}\n```"


class Plan(Result):
    """`ttspec plan --json`'s document (schema ttspec-plan/3): `fits`, `target`, `mesh`, `strategy`,
    `memory_per_chip` (dram, weights, kv_cache, activations, total, max_context, max_batch ...), `modelled_time`,
    the placements and collectives of a mesh plan; str() is `ttspec plan`'s text."""

    fits: bool
    target: str
    model: str
    mesh: list[int]
    strategy: str | None
    memory_per_chip: Result
    modelled_time: Result

    def __str__(self) -> str:
        from ..reports.plan_report import render_plan

        return render_plan(self._data)

    def __repr__(self) -> str:
        m = self._data["memory_per_chip"]
        return (f"<ttspec.Plan {self._data['model']} on {self._data['target']}: "
                f"{'fits' if self._data['fits'] else 'does not fit'}, {m['total']:,} of {m['dram']:,} bytes per chip>")


class Search(Result):
    """`ttspec plan --search --json`'s document (schema ttspec-plan-search/1, docs/plan-search-json.md): `plans`
    ranked best first (each its mesh, strategy, weight formats, batch, memory and modelled times), `space`,
    `floors`; str() is `plan --search`'s text."""

    plans: list
    target: str

    def __init__(self, data: dict, compile_command: str) -> None:
        super().__init__(data)
        object.__setattr__(self, "_compile_command", compile_command)

    def __str__(self) -> str:
        from ..reports.plan_search import render_search

        return render_search(self._data, self._compile_command)

    def __repr__(self) -> str:
        return f"<ttspec.Search {self._data['model']} on {self._data['target']}: {len(self._data['plans'])} plans>"


class Report(Result):
    """`ttspec report --json`'s document for one target (schema ttspec-report/1): `totals` (ttft_ms,
    decode_ms_per_step, tokens_per_s_per_user, tokens_per_s), `prefill`, `decode`, `memory_per_chip`,
    `hardware`, `constants`; for a target that cannot take the model (several targets compared), only `target`
    and `refused` (why). str() is `ttspec report`'s text."""

    target: str
    totals: Result

    @property
    def refused(self) -> str | None:
        return self._data.get("refused")

    def __str__(self) -> str:
        if self.refused is not None:
            return f"{self._data['target']}: refused: {self.refused}"
        from ..reports.report import render_report

        return render_report(self._data)

    def __repr__(self) -> str:
        if self.refused is not None:
            return f"<ttspec.Report {self._data['target']}: refused>"
        t = self._data["totals"]
        decode = "" if t["tokens_per_s_per_user"] is None else f", {t['tokens_per_s_per_user']:,.1f} tokens/s/user"
        return f"<ttspec.Report {self._data['model']} on {self._data['target']}: ttft {t['ttft_ms']:.3g} ms{decode}>"


class Reports(list):
    """Reports for several targets, in the order given (`report --json`'s list)."""

    def to_dict(self) -> list[dict]:
        return [r.to_dict() for r in self]

    def __str__(self) -> str:
        return "\n\n".join(map(str, self))

    def _repr_markdown_(self) -> str:
        return f"```text\n{self}\n```"


class Diagnostics(list):
    """Every diagnostic `ttspec check` gives a spec, in its order (errors, or warnings when it elaborates):
    ttspec.errors.Diagnostic each (severity, message, loc, hint, notes). `.ok` as `check`'s exit status says;
    str() is `check`'s text on stderr; `.to_dict()` is `check --json`'s document."""

    def __init__(self, diagnostics: list[Diagnostic], ok: bool, spec: str, model: str | None = None) -> None:
        super().__init__(diagnostics)
        self.ok, self.spec, self.model = ok, spec, model

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self if d.severity == "warning"]

    def to_dict(self) -> dict:
        from ..reports.check_json import CheckResult, check_json

        return check_json([CheckResult(self.spec, list(self), self.ok, self.model)])

    def __str__(self) -> str:
        sources = SourceCache()
        return "\n".join(d.render(sources) for d in self)

    def _repr_markdown_(self) -> str:
        return f"```text\n{self or 'ok'}\n```"
