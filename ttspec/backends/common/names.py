"""The one namer every identifier of a generated program comes from.

Spec names (the model, blocks, labels, variables, inputs) become Python names in three kinds
of scope, each with what a name there must never be:

- module scope (class names): a Python keyword, soft keyword or builtin, an import of the
  program (`torch`, `F`, `nn`, `ttnn`, `math`, `re`) or one of its module-level helpers and
  constants (`Rotary`, `Weights`, `TILE`, `split_heads` ...), or another class;
- a class (attribute names, `self.<attr>`): anything nn.Module or the generated classes
  already define (`forward`, `training`, `to`, `state_dict`, `device`, `load_weights` ...), a
  name starting with `_`, or another member of the same class;
- a method (local variables): a keyword or builtin, an import or module-level helper (a local
  shadows the global the method calls), `self`, or a name still holding a live value (see
  emit.py, which reuses a name once its value is dead).

A name that would collide keeps its spelling with `_` appended, then `_1`, `_2` ... until free.
Parameter names (`layers.3.attn.wq.weight`) are data, not identifiers: they keep the spec's
labels, and where an attribute had to be renamed the program maps one to the other.
"""

from __future__ import annotations

import builtins
import keyword
from functools import cache

from .inline import all_runtime_dirs, module_level_names

PYTHON = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))




@cache
def program_globals() -> frozenset[str]:
    """What the generated programs import or define at module level: what their runtime's modules
    (backends/*/rt/*.py, the headers' constants included) import or define, as the runtime index
    states it (inline.py), and the imports the model code uses. Read on first use: `plan` never needs it."""
    return frozenset(module_level_names(all_runtime_dirs())) | {"torch", "F", "nn", "ttnn", "math", "re"}


def __getattr__(name: str):
    if name == "PROGRAM_GLOBALS":  # the same, as a constant
        return program_globals()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Attributes and methods of nn.Module (torch 2.x, public and private) and of the generated classes.
MODULE_MEMBERS = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state",
    "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train", "training", "type", "xpu",
    "zero_grad",
    # the generated classes' own members
    "device", "weights_dtype", "load_weights", "load_ttspec_weights", "build", "load_hf_state_dict", "weight", "bias",
    "LABELS", "rot", "style", "inv_freq", "matrix", "tables", "head_dim", "tensors", "dtype",
    # the programs' serving API, the TT-NN run state and the torch rotary's settings
    "state", "allocate_cache", "prefill", "decode", "logits_to_host", "settings", "cos_sin", "init_weights",
})

# The forward methods' argument saying where the tokens sit (torch: prefill and decode positions).
POSITIONS_ARG = "pos"

# unittest's deprecated aliases: ruff (UP005) flags any call `self.<alias>(...)`, so a member with
# one of these names would make a generated program fail its lint.
UNITTEST_ALIASES = frozenset({
    "assertAlmostEquals", "assertEquals", "assertNotAlmostEquals", "assertNotEquals", "assertNotRegexpMatches",
    "assertRaisesRegexp", "assertRegexpMatches", "assert_", "failIf", "failIfAlmostEqual", "failIfEqual",
    "failUnless", "failUnlessAlmostEqual", "failUnlessEqual", "failUnlessRaises",
})

# Names the generated methods use as locals besides the forward's own.
METHOD_LOCALS = frozenset({"self", "layer", POSITIONS_ARG})
# Locals of the TT-NN root's __call__, which also binds the model's input.
CALL_LOCALS = frozenset({"seq", "padded", "batch", "mapper"})


def sanitize(name: str) -> str:
    """A spec name as an identifier: the last path component, other characters as `_`."""
    name = name.rsplit(".", 1)[-1]
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "_"


def camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in sanitize(name).split("_") if p)


class Scope:
    """Names taken in one scope, and the ones it must never use."""

    def __init__(self, reserved: frozenset[str] | set[str], fallback: str = "v", private: bool = True):
        self.reserved = frozenset(reserved)
        self.taken: set[str] = set()
        self.fallback = fallback
        self.private = private  # whether a name may start with `_`

    def ok(self, name: str) -> bool:
        return name.isidentifier() and not keyword.iskeyword(name) and name not in self.reserved \
            and name not in self.taken

    def base(self, name: str) -> str:
        """`name` made a legal identifier for this scope, before any uniqueness suffix."""
        name = sanitize(name)
        if name[0].isdigit() or not name.isidentifier() or (not self.private and name[0] == "_"):
            name = self.fallback + ("" if name[0] == "_" else "_") + name
        if name in self.reserved or keyword.iskeyword(name):
            name += "_"
        return name

    def candidates(self, name: str):
        base = self.base(name)
        yield base
        k = 1
        while True:
            yield f"{base}_{k}"
            k += 1

    def claim(self, name: str) -> str:
        """A fresh name, as close to `name` as this scope allows; taken from now on."""
        for candidate in self.candidates(name):
            if self.ok(candidate):
                self.taken.add(candidate)
                return candidate
        raise AssertionError  # pragma: no cover - candidates never end

    def claim_exact(self, name: str) -> str:
        """A name the program's data requires (a parameter's own local name, `weight`)."""
        assert name.isidentifier() and name not in self.taken, name
        self.taken.add(name)
        return name


def class_scope() -> Scope:
    """Module scope, for class names."""
    return Scope(PYTHON | program_globals(), fallback="Block", private=False)


def member_scope() -> Scope:
    """One class's attributes."""
    return Scope(PYTHON | MODULE_MEMBERS | UNITTEST_ALIASES, fallback="m", private=False)


def local_reserved(root_call: bool = False) -> frozenset[str]:
    """What a forward's locals must never be (the TT-NN root's forward also shares its input's
    name with __call__'s locals)."""
    return PYTHON | program_globals() | METHOD_LOCALS | (CALL_LOCALS if root_call else frozenset())


def root_class_name(model_name: str) -> str:
    """The model's class: claimed first in module scope, so a function of the model's name."""
    return class_scope().claim(camel(model_name) or "Model")
