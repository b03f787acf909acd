"""A labelled component's parameter count, as `ttspec params` reports it, and the HF checkpoint names of its
parameters under the spec's `family` (ttspec/checkpoints.py's rules, as loading and saving use them)."""

from __future__ import annotations

from ..checkpoints import match_rule

LAYER_MARK = "987654321"  # stands for the layer index while a rule maps a name; shown as `N`


def find(report: dict, chain: tuple[str, ...]) -> tuple[dict, list[int]] | None:
    """The report's component at `chain` (its path in each graph, through the repeats above it) and the
    layer counts of those repeats."""
    comps, entry, repeats = report["components"], None, []
    for k, path in enumerate(chain):
        entry = _by_path(comps, path)
        if entry is None:
            return None
        if k + 1 < len(chain):
            if "repeat" not in entry:
                return None
            repeats.append(entry["repeat"])
        comps = entry["children"]
    return (entry, repeats) if entry is not None else None


def _by_path(comps: list[dict], path: str) -> dict | None:
    for c in comps:
        if c["path"] == path:
            return c
        if path.startswith(c["path"] + "."):
            found = _by_path(c["children"], path)
            if found is not None:
                return found
    return None


def parameter_rows(report: dict, chain: tuple[str, ...]) -> list[dict]:
    """The `parameters` rows (`layers.*.attn.wq.weight` ...) of the component at `chain`."""
    prefix = ".*.".join(chain) + "."
    return [r for r in report["parameters"] if r["name"].startswith(prefix)]


def hf_names(family: str | None, rows: list[dict]) -> list[tuple[str, str | None, str]]:
    """(our name, HF name, note) per row under `family` (`N` for the layer); a tied row has no HF name of its
    own (note `tied to ...`); a fused HF tensor's part says which (`part 1 of 3`), a transposed one so."""
    if family is None:
        return []
    from ..families import FAMILIES, rules_of

    if family not in FAMILIES:
        return []
    rules = rules_of(family)
    out = []
    for r in rows:
        ours = r["name"].replace("*", "N")
        if r["tied_to"]:
            out.append((ours, None, f"tied to `{r['tied_to']}`"))
            continue
        found = match_rule(rules, r["name"].replace("*", LAYER_MARK))
        if found is not None:
            rule, part, hf = found
            notes = [f"part {part + 1} of {len(rule.ours)}"] if len(rule.ours) > 1 else []
            notes += ["transposed"] if rule.transpose and len(r["shape"]) > 1 else []
            out.append((ours, hf.replace(LAYER_MARK, "N"), ", ".join(notes)))
    return out


def describe(report: dict, family: str | None, label: str, chain: tuple[str, ...]) -> str | None:
    """Markdown: the component's block, its count (per layer and in all inside a repeat) and HF names."""
    found = find(report, chain)
    if found is None:
        return None
    entry, repeats = found
    layers = 1
    for n in repeats:
        layers *= n
    head = f"**{label}** · `{entry['block']}` · kind {entry['kind']}"
    if "repeat" in entry:
        count = (f"**{entry['params']:,}** parameters: {entry['repeat']} layers × {entry['per_layer']:,}"
                 if len({entry['per_layer'] * entry['repeat'], entry['params']}) == 1
                 else f"**{entry['params']:,}** parameters over {entry['repeat']} layers")
    elif repeats:
        count = f"**{entry['params']:,}** parameters per layer ({layers} layers: {entry['params'] * layers:,})"
    else:
        count = f"**{entry['params']:,}** parameters"
    lines = [head, count]
    shapes = [f"`{t['name']}` [{', '.join(map(str, t['shape']))}]" + (f" tied to `{t['tied_to']}`"
                                                                      if t["tied_to"] else "")
              for t in entry["tensors"]]
    if shapes:
        lines.append("tensors: " + ", ".join(shapes))
    names = hf_names(family, parameter_rows(report, chain))
    if names:
        shown = names[:12]
        lines.append(f"HF names (`family {family}`):\n" + "\n".join(_name_line(*n) for n in shown)
                     + (f"\n- ... {len(names) - len(shown)} more" if len(names) > len(shown) else ""))
    return "\n\n".join(lines)


def _name_line(ours: str, hf: str | None, note: str) -> str:
    if hf is None:
        return f"- `{ours}`: {note}"
    return f"- `{ours}` → `{hf}`" + (f" ({note})" if note else "")
