"""What a call of the model is computing, shared by all its layers (RunState)."""

import torch
import ttnn

from .header import DATA_PARALLEL, TILE
from .mesh import shard


class RunState:
    """What a call of the model is computing, shared by its layers: "full" (model(tokens), no
    cache), "prefill" (one user's prompt, filling its cache rows) or "decode" (one token for each
    user, the users on the rows). `positions` holds the position of each row of the sequence dim.
    Host inputs of a decode step go through step_input, so a captured trace can replay the step
    with the same device tensors refreshed in place."""

    def __init__(self, device, trace=True):
        self.device = device
        self.trace = trace
        self.mode = "full"
        self.positions = self.tokens = None  # decode: each row's position and token ([users])
        self.user = self.last = None  # prefill: the user, and the position whose logits it returns (None: all)
        self.length = None  # model(tokens): its real positions, before the padding (non-causal attention masks it)
        self.padding_mask = None  # model(tokens): the mask non-causal attention adds on the padded keys
        self.caches = []  # every attention's KVCache, in the order the layers were built
        self.batch = self.context = 0
        self.inputs = {}  # decode-step inputs: key -> [make, dtype, layout, device tensor]
        self.step_values = {}  # what one step computes once for all layers (gathered cos/sin): key -> value
        self.uploaded = set()  # the step inputs uploaded in this step
        self.kept = {}  # device tensors made once for the cache's batch and context (RoPE tables): key -> value
        self.step_makers = {}  # key -> how a step's shared value is made (per_step)
        self.replaying = False
        self.trace_id = self.trace_output = self.trace_kind = None

    @property
    def decoding(self):
        return self.mode == "decode"

    def allocate(self, batch, context):
        if not 1 <= batch <= TILE:
            raise ValueError(f"a decode batch is 1 to {TILE} users (the rows of a tile), got {batch}")
        if DATA_PARALLEL:
            raise NotImplementedError("decode with the batch split over data-parallel replicas is not generated yet: "
                                      "compile without --dp")
        self.release_trace()
        self.batch, self.context = batch, -(-context // TILE) * TILE
        self.inputs, self.kept, self.step_makers = {}, {}, {}
        for cache in self.caches:
            cache.allocate(self.batch, self.context)

    def check_prefill(self, padded, user):
        if not self.batch:
            raise RuntimeError("allocate_cache(batch, context) first")
        if not 0 <= user < self.batch:
            raise ValueError(f"user {user} is outside the cache's {self.batch} users")
        if padded > self.context:
            raise ValueError(f"a prompt of {padded} positions (padded to a tile) exceeds the cache's {self.context}")

    def check_decode(self, tokens, positions):
        if not self.batch:
            raise RuntimeError("allocate_cache(batch, context) first")
        if tokens.shape != positions.shape or not 1 <= tokens.shape[0] <= self.batch:
            raise ValueError(f"decode takes one token and one position for each of 1 to {self.batch} users, got "
                             f"{list(tokens.shape)} tokens and {list(positions.shape)} positions")
        if positions.min() < 0 or positions.max() >= self.context:
            raise ValueError(f"positions must lie in [0, {self.context}), got {positions.tolist()}")
        return tokens.shape[0]

    def begin(self, mode, positions, user=None, tokens=None, last=None):
        self.mode, self.positions, self.user, self.tokens, self.last = mode, positions, user, tokens, last
        self.step_values, self.uploaded = {}, set()

    def end(self):
        self.mode, self.positions, self.user, self.tokens, self.last = "full", None, None, None, None
        self.step_values, self.uploaded = {}, set()

    def head_rows(self, x):
        """The rows [..., seq, features] the LM head computes: in a prefill that returns its last position's
        logits (`last`), the tile of rows holding that position; else all of them."""
        if self.mode != "prefill" or self.last is None:
            return x
        start = self.last // TILE * TILE
        begins, ends = [0] * len(x.shape), list(x.shape)
        begins[-2], ends[-2] = start, start + TILE
        return ttnn.slice(x, begins, ends)

    def per_step(self, key, make):
        """`make()` computed once in a step and shared by its layers (a replayed trace recomputes it); after the
        first step, prepare_step computes it before the layers run."""
        self.step_makers.setdefault(key, make)
        if key not in self.step_values:
            self.step_values[key] = make()
        return self.step_values[key]

    def prepare_step(self):
        """What the layers of a decode step share, computed before them (each value the first step asked for)."""
        for key, make in self.step_makers.items():
            self.step_values[key] = make()

    def keep(self, key, make):
        """`make()` made once for the allocated cache's batch and context, before any trace is captured (the first
        decode step runs uncaptured), so replays allocate nothing."""
        if key not in self.kept:
            self.kept[key] = make()
        return self.kept[key]

    def lasting(self, store, key, make):
        """`make()` (device tensors) kept in `store` under `key` for later calls, unless a trace is held: then it
        is made for this call alone, since a buffer allocated after a capture that lives on into a replay may be
        overwritten by it (ttnn warns so); what was kept before the capture stays."""
        if key in store:
            return store[key]
        value = make()
        if self.trace_id is None:
            store[key] = value
        return value

    def row_positions(self, rows):
        """The position of each of `rows` rows: 0..rows-1 outside decode, each user's own in decode
        (0 for a row without a user)."""
        if self.positions is None:
            return torch.arange(rows)
        return self.positions.clamp(min=0)

    def upload(self, tensor, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=True):
        return ttnn.from_torch(tensor, dtype=dtype, layout=layout, device=self.device if device else None,
                               mesh_mapper=shard(self.device))

    def upload_tokens(self, ids):
        return self.upload(ids, ttnn.uint32, ttnn.ROW_MAJOR_LAYOUT)

    def step_input(self, key, make, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT):
        """The device tensor of host data `make()`, which must read the step's tokens and positions
        from this state (a replayed trace calls it again for each step). In a decode step the tensor
        is kept under `key`: a replayed trace reads the same tensor, refreshed in place."""
        if self.mode != "decode":
            return self.upload(make(), dtype, layout)
        if (self.replaying or key in self.uploaded) and key in self.inputs:  # uploaded once a step
            return self.inputs[key][3]
        self.uploaded.add(key)
        tensor = self.upload(make(), dtype, layout)
        self.inputs[key] = [make, dtype, layout, tensor]
        return tensor

    def position_tensor(self):
        """Each row's position as an int32 device tensor [users]; -1 marks a row with no user."""
        return self.per_step("positions", lambda: self.step_input(
            "positions", lambda: self.positions.to(torch.int32), ttnn.int32, ttnn.ROW_MAJOR_LAYOUT))

    def run_step(self, step, kind="logits"):
        """One decode step: `step()` directly, or (device mode, trace on) captured on the first call
        and replayed afterwards with its inputs rewritten in place. `kind` names what the step returns
        ("logits", "greedy"): one trace is held at a time, so a step of another kind releases it first."""
        if not self.trace:
            return step()
        if self.trace_kind != kind:
            self.release_trace()
        if self.trace_id is None:
            output = step()  # compiles every op's kernels and creates the step's input tensors
            self.replaying = True
            try:
                self.trace_id = ttnn.begin_trace_capture(self.device, cq_id=0)
                self.trace_output = step()
                ttnn.end_trace_capture(self.device, self.trace_id, cq_id=0)
                self.trace_kind = kind
            finally:
                self.replaying = False
            return output
        for make, dtype, layout, tensor in self.inputs.values():
            ttnn.copy_host_to_device_tensor(self.upload(make(), dtype, layout, device=False), tensor)
        ttnn.execute_trace(self.device, self.trace_id, cq_id=0, blocking=False)
        return self.trace_output

    def release_trace(self):
        if self.trace_id is not None:
            ttnn.release_trace(self.device, self.trace_id)
        self.trace_id = self.trace_output = self.trace_kind = None
