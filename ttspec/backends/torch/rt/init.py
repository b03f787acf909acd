"""A fresh model's initialisation: each parameter's rule, from the program's INIT table (the spec's
family's rule, applied to what each parameter is in the graph)."""

import re

from .header import INIT


def init_of(name):
    """("normal", std) or ("constant", value) for parameter `name` (a ttspec name; `*` in a pattern: a
    layer's index)."""
    for pattern, rule in INIT.items():
        if re.fullmatch(re.escape(pattern).replace(r"\*", r"\d+"), name):
            return rule
    raise KeyError(f"no initialisation for {name} in INIT")
