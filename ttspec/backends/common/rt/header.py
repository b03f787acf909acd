"""What a generated program's header (or closing tables) states for the shared runtime: the
template writes these with the program's values; the defaults describe no model at all."""

# every stored parameter's ttspec name, a repeat written once as `layers.*6.attn.wq.weight` (one only
# some layers hold, where the layers differ in structure: `layers.[0:3,5].mlp.w1.weight`, layers 0-2 and 5)
PARAMETERS: list[str] = []
# ttspec name pattern -> (HF transformers name, transform); `(\d+)` is the layer index
HF_NAMES: list[tuple[str, str, str]] = []
