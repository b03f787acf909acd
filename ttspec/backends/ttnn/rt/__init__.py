"""The runtime of generated TT-NN programs: the model's API (program.py), devices and placement
(mesh.py), the run state shared by a call's layers (run_state.py), KV caches and attention
(kv_cache.py, attention.py), weights on the device (weights.py), positions (rotary.py) and norm
settings (norms.py).

One code path for one chip and a mesh: a single chip is a 1x1 mesh, and what differs between
programs is data their header states (header.py: MESH_SHAPE, TP_AXIS, ...) and each weight's
placement, which the model code passes to Weights. The compiler never imports these modules:
backends/common/inline.py inlines the definitions a program uses into the program itself.
"""

# the order their definitions take in a program: what the others build on first
MODULES = ("program", "mesh", "run_state", "kv_cache", "weights", "attention", "rotary", "norms", "moe")
