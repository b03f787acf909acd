"""The elaborator: AST -> graph IR (scopes, blocks, `repeat`, unification of dims).

values       tensors, symbolic dims, module references, bindings, scopes, limits
statements   files, imports and statements
expressions  names, arithmetic, comparisons, lists
calls        primitives, configs, activations, the nodes and parameters a call adds
blocks       block instantiation and type unification
repeats      `repeat(N)`: layer variants and their checks
diagnostics  how errors and warnings are worded and located
recovery     several errors per spec: top-level statements as recovery points
elaborator   the Elaborator (the state above, one mixin per concern) and `elaborate`
"""

from .elaborator import Elaborator, elaborate
from .values import MAX_REPEAT, STDLIB_DIR, STDLIB_PREFIX, Binding, ModuleRef, Sym, Tensor, describe, is_stdlib, show

__all__ = ["MAX_REPEAT", "STDLIB_DIR", "STDLIB_PREFIX", "Binding", "Elaborator", "ModuleRef", "Sym", "Tensor",
           "describe", "elaborate", "is_stdlib", "show"]
