"""The runtime of generated PyTorch reference programs: the model's API (program.py: loading weights,
the KV cache, prefill and decode), attention and its KV cache (attention.py),
mixtures of experts (experts.py), positions (positions.py:
Positions, rotary, sinusoidal), parameter names (names.py), block-float rounding (block_floats.py) and a fresh model's
initialisation (init.py).
The compiler never imports these modules: backends/common/inline.py inlines the definitions a program
uses into the program itself."""

# the order their definitions take in a program: the model's API first, as the root class's methods
MODULES = ("program", "attention", "experts", "positions", "names", "block_floats", "init")
