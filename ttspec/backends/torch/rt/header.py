"""What a generated PyTorch program's header (or closing tables) states for its runtime: the
template writes these with the program's values; the defaults describe no model at all."""

# tied parameter -> the parameter whose tensor it shares
TIED: dict[str, str] = {}
# weight matrices the TT-NN program stores as block floats: ttspec name (`*`: a layer index) -> dtype
BLOCK_FLOAT_WEIGHTS: dict[str, str] = {}
# why this model cannot generate token by token (None: it can; else allocate_cache, prefill, decode and
# generate refuse)
CANNOT_DECODE: str | None = None
# how a fresh model starts each parameter: ttspec name (`*`: a layer index) -> ("normal", std) or ("constant", value)
INIT: dict[str, tuple[str, float]] = {}
