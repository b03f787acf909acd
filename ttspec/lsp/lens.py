"""The CodeLens on the `model` line: the exact parameter count (`ttspec params`' total; the active count
where it differs, mixture-of-experts) and which device targets the model fits, by the memory model `ttspec
plan` and `check --target` use (driver.fits_on: Build.fits, weights, the KV cache of one user and
activations at one tile of context, on one chip of the target's whole mesh), with bf16 weights and batch 1.

Computed when the editor asks, once per document version (kept on the Analysis), and only for a spec that
elaborated: a spec with errors has no lens (its diagnostics say why). The eight targets take well under a
second for every spec in specs/ (about 3 s for a spec that writes out 600 layers without `repeat`)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from lsprotocol import types

from ..analysis.interpreters import count_active, count_params
from ..driver import fits_on
from ..reports.check_json import lsp_range
from ..targets import DEVICE_TARGETS, TARGETS

NO_COMMAND = ""  # a lens that only shows text: editors display a command with an empty id as a label


class Facts:
    """What the lens says: parameter counts, and the targets the model fits and does not."""

    def __init__(self, total: int, active: int, fits: list[str], not_fitting: list[str], refused: list[str]):
        self.total, self.active, self.fits, self.not_fitting, self.refused = total, active, fits, not_fitting, refused

    def params_text(self) -> str:
        text = f"{self.total:,} parameters"
        return text + (f" ({self.active:,} active)" if self.active != self.total else "")

    def fits_text(self) -> str:
        """e.g. `fits (bf16, batch 1): p100, p150, n300 · not: n150`."""
        text = "fits (bf16, batch 1): " + (", ".join(self.fits) if self.fits else "no target")
        if self.not_fitting:
            text += " · too big for " + ", ".join(self.not_fitting)
        if self.refused:
            text += " · cannot compile for " + ", ".join(self.refused)
        return text


def facts(model) -> Facts:
    """The lens's facts for an elaborated model (ir.graph.Model)."""
    fits, not_fitting, refused = [], [], []
    for name, verdict in fits_on(model, [TARGETS[name] for name in DEVICE_TARGETS]).items():
        (fits if verdict is True else not_fitting if verdict is False else refused).append(name)
    return Facts(count_params(model.graph), count_active(model.graph), fits, not_fitting, refused)


def lenses(analysis) -> list[types.CodeLens]:
    """The `model` line's lenses (none for a spec that did not elaborate), computing their facts here when
    they are not kept on the analysis yet."""
    module = analysis.module()
    if analysis.model is None or module is None or module.name_loc is None or module.name_loc.file != analysis.spec:
        return []
    if analysis.lens_facts is None:
        analysis.lens_facts = facts(analysis.model)
    r = lsp_range(module.name_loc)
    at = types.Range(types.Position(r["start"]["line"], 0), types.Position(r["end"]["line"], r["end"]["character"]))
    return [types.CodeLens(at, types.Command(analysis.lens_facts.params_text(), NO_COMMAND)),
            types.CodeLens(at, types.Command(analysis.lens_facts.fits_text(), NO_COMMAND))]


# The facts are worked out on one thread beside the server's: a spec that writes out hundreds of layers takes
# seconds to weigh for eight targets, and diagnostics must not wait for that. (The thread only reads the
# elaborated model; the next version's check builds its own.)
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttspec-lens")


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    async def code_lens(ls, params: types.CodeLensParams) -> list[types.CodeLens] | None:
        analysis = ls.documents.get(params.text_document.uri)
        if analysis is None:
            return None
        if analysis.model is not None and analysis.lens_facts is None:
            pending = getattr(analysis, "lens_pending", None)  # one computation per version, however often asked
            if pending is None:
                pending = analysis.lens_pending = asyncio.get_running_loop().run_in_executor(
                    _WORKER, facts, analysis.model)
            analysis.lens_facts = await pending
        return lenses(analysis)
