"""The runtime of generated PyTorch reference programs: attention and its KV cache (attention.py),
positions (positions.py: Positions, rotary, sinusoidal), parameter names (names.py) and block-float
rounding (block_floats.py). The compiler never imports these modules: backends/common/inline.py
inlines the definitions a program uses into the program itself."""

# the order their definitions take in a program
MODULES = ("attention", "positions", "names", "block_floats")
