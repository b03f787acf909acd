"""The text a run trains on, as token ids: files read as UTF-8 bytes (a vocabulary of at least 256) or through an
HF `tokenizers` tokenizer.json; the last `val_fraction` of the ids held out; batches drawn from a generator seeded
by (seed, step, micro-batch), so that a batch depends on nothing but its place in the run (what lets `--resume`
continue bit-for-bit, and a test feed another loop the same data)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from ..errors import ArchError, UsageError
from ..inputs import quote, read_bytes

MAX_DATA_BYTES = 4 << 30  # text for one host's memory; larger corpora want a streaming loader
MAX_TOKENIZER_BYTES = 64 << 20


class Tokens:
    """The token ids of --data (int64 tensors `train` and `val`), what made them (`tokenizer`, `paths`) and a
    digest of them (`sha256`: a resumed run refuses other data)."""

    def __init__(self, ids, val_fraction: float, tokenizer: str, paths: list[str]):
        import torch

        self.tokenizer, self.paths = tokenizer, paths
        self.sha256 = hashlib.sha256(ids.numpy().tobytes()).hexdigest()
        held = int(math.floor(len(ids) * val_fraction))
        self.train, self.val = ids[:len(ids) - held].clone(), ids[len(ids) - held:].clone()
        self.all = torch.cat([self.train, self.val])

    def check_fits(self, seq: int, batch: int) -> None:
        """Both splits must hold one window of seq + 1 tokens (inputs and their next tokens)."""
        for name, part in (("training", self.train), ("held-out", self.val)):
            if len(part) < seq + 1:
                raise UsageError(f"the {name} split holds {len(part):,} tokens, fewer than --seq {seq} + 1 "
                                 f"(--data gives {len(self.train) + len(self.val):,} tokens, the last "
                                 f"{len(self.val):,} held out)",
                                 hint="give more text, a shorter --seq, or a larger --val-fraction"
                                 if name == "held-out" else "give more text or a shorter --seq")

    def batch(self, seed: int, step: int, micro: int, batch: int, seq: int):
        """Inputs and targets [batch, seq] of micro-batch `micro` of step `step` (0-based): `batch` windows of the
        training split at offsets drawn uniformly by torch.randint from a generator seeded with
        batch_seed(seed, step, micro)."""
        import torch

        gen = torch.Generator().manual_seed(batch_seed(seed, step, micro))
        offsets = torch.randint(0, len(self.train) - seq, (batch,), generator=gen)
        return windows(self.train, offsets, seq)

    def val_batches(self, count: int, batch: int, seq: int):
        """The held-out batches every evaluation uses: count x batch windows at evenly spaced offsets."""
        import torch

        n = count * batch
        last = len(self.val) - seq - 1
        offsets = torch.tensor([(i * last) // max(1, n - 1) for i in range(n)], dtype=torch.int64)
        return [windows(self.val, offsets[i * batch:(i + 1) * batch], seq) for i in range(count)]


def batch_seed(seed: int, step: int, micro: int) -> int:
    """The seed of one micro-batch's generator: a hash of (seed, step, micro) into torch's 63-bit seeds."""
    digest = hashlib.sha256(f"{seed}/{step}/{micro}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def windows(ids, offsets, seq: int):
    import torch

    rows = torch.stack([ids[o:o + seq + 1] for o in offsets.tolist()])
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()


def read_tokens(paths: list[str], tokenizer_path: str | None, vocab: int, val_fraction: float) -> Tokens:
    """--data's files as token ids, checked against the spec's vocabulary."""
    import torch

    if not paths:
        raise UsageError("--data needs at least one file", hint="e.g. --data corpus.txt")
    datas = [read_bytes(p, "training data", MAX_DATA_BYTES) for p in paths]
    for path, data in zip(paths, datas):
        if not data:
            raise ArchError(f"{quote(path)} is empty", hint="--data takes text files with something to learn")
    if tokenizer_path is None:
        if vocab < 256:
            raise UsageError(f"the spec's vocabulary has {vocab} entries, too few for bytes (256)",
                             hint="pass --tokenizer tokenizer.json, or give the spec a vocabulary of 256")
        ids = torch.frombuffer(bytearray(b"".join(datas)), dtype=torch.uint8).to(torch.int64)
        return Tokens(ids, val_fraction, "bytes (UTF-8)", list(paths))
    tokenizer = _tokenizer(tokenizer_path, vocab)
    ids = []
    for path, data in zip(paths, datas):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise ArchError(f"{quote(path)}:{line}: not UTF-8 text ({e.reason})",
                            hint="a tokenizer.json encodes text: give UTF-8 files, or leave out --tokenizer to "
                                 "train on bytes") from None
        try:
            ids += tokenizer.encode(text).ids
        except Exception as e:  # the library raises its own exception types
            raise ArchError(f"the tokenizer {quote(tokenizer_path)} cannot encode {quote(path)}: {quote(e, 300)}") \
                from None
    if not ids:
        raise ArchError(f"the tokenizer {quote(tokenizer_path)} makes no token of --data")
    return Tokens(torch.tensor(ids, dtype=torch.int64), val_fraction, str(tokenizer_path), list(paths))


def _tokenizer(path: str, vocab: int):
    from ..runtime.generation import HFTokenizer

    tokenizer = HFTokenizer(Path(path)).tokenizer
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > vocab:
        raise ArchError(f"the tokenizer {quote(path)} has {size:,} tokens; the spec's vocabulary has {vocab:,}",
                        hint=f"give the spec `vocab = {size}` or more, or use a tokenizer of at most {vocab:,} "
                             "tokens")
    return tokenizer


def unigram_entropy(ids, vocab: int) -> float:
    """The entropy (nats) of the ids' own distribution: the loss of the best model that ignores context."""
    import torch

    counts = torch.bincount(ids, minlength=vocab).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())
