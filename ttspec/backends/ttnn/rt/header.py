"""What a generated TT-NN program's header states (the template writes these with the program's
values). The defaults here describe one Wormhole n150 chip, so that the runtime imports and runs
on its own in tests."""

import ttnn

TILE = 32
TRACE_REGION = 1 << 25  # bytes of DRAM for the captured decode step
WEIGHTS_DTYPE = ttnn.bfloat16
KV_CACHE_DTYPE = ttnn.bfloat16  # the KV cache's format: ttnn.bfloat16 or ttnn.bfloat8_b (--kv-dtype)
MESH_SHAPE = (1, 1)  # a single chip is a 1x1 mesh
FABRIC = ttnn.FabricConfig.FABRIC_1D  # the fabric a mesh opens (one chip opens none)
CCL_DTYPE = ttnn.bfloat16  # a mesh's decode partial sums into the residual: bfloat16 or bfloat8_b (--ccl-dtype)
TP_AXIS = 1  # the mesh axis that splits the wide dims (heads, MLP hidden, vocabulary)
DATA_PARALLEL = False  # whether the other mesh axis splits the batch between model replicas
LOGITS_SPLIT = False  # whether the logits' vocabulary is split over TP_AXIS
# device DRAM per chip (ttspec's memory model): what the KV cache and one prompt's prefill may use
DRAM_BESIDE_WEIGHTS = 0
KV_CACHE_BYTES_PER_POSITION = 0  # K and V of every layer, one user (in KV_CACHE_DTYPE)
PREFILL_BYTES_PER_POSITION = 0  # activations of one prompt, per position (the logits apart)
LOGITS_BYTES_PER_POSITION = 0  # the head's output, per position (prefill computes the last tile's)
PREFILL_BYTES_PER_POSITION_PAIR = 0  # softcapped attention's [heads, seq, seq] logits
MAX_CONTEXT = None  # the longest sequence the program accepts (None: no bound known)
SPEC_BOUND = None  # the spec's own bound on seq, when it has one
VOCAB = 0  # the logits' width
# why this model cannot decode token by token (None: it can; else allocate_cache, prefill, decode and generate
# refuse)
CANNOT_DECODE = None
