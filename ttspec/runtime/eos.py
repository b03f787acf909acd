"""The checkpoint's end-of-text tokens: where `ttspec generate` stops a user by default, as HF's
`generate` does. generation_config.json's `eos_token_id` first (what `generate` reads), else
config.json's; an int or a list of ints. `--stop ID ...` replaces them and `--stop none` runs every
user to --max-new-tokens."""

from __future__ import annotations

import os
from pathlib import Path

from ..inputs import MiB, load_json

CONFIG_LIMIT = 16 * MiB  # configs are kilobytes


def checkpoint_stop_tokens(weights: str | None, vocab: int) -> list[int]:
    """The end-of-text ids the checkpoint at `weights` (a model directory, or a file in one) declares,
    within the vocabulary; [] without weights or without a declared id. Ids that are not ints in
    [0, vocab) are passed over (a stop token the model cannot produce never stops it)."""
    if not weights:
        return []
    folder = Path(weights)
    folder = folder if folder.is_dir() else folder.parent
    for name in ("generation_config.json", "config.json"):
        if not os.path.lexists(folder / name):
            continue
        data, _ = load_json(folder / name, name, CONFIG_LIMIT)
        value = data.get("eos_token_id") if isinstance(data, dict) else None
        ids = value if isinstance(value, list) else [value]
        found = [i for i in ids if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab]
        if value is not None:
            return list(dict.fromkeys(found))
    return []
