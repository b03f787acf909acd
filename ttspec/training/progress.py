"""`ttspec train`'s progress bar on a terminal (stderr): step, loss, held-out loss, tokens/s and the time left,
rewritten in place at most five times a second; nothing when stderr is not a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, steps: int, tokens_per_step: int, start: int, stream=None):
        self.out = stream or sys.stderr
        self.enabled = hasattr(self.out, "isatty") and self.out.isatty()
        self.steps, self.tokens_per_step, self.start = steps, tokens_per_step, start
        self.began = self.last = time.perf_counter()
        self.val = None
        self.shown = False

    def update(self, done: int, record: dict) -> None:
        if "val_loss" in record:
            self.val = record["val_loss"]
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < self.steps):
            return
        self.last, self.shown = now, True
        elapsed = now - self.began
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.steps - done) / rate if rate > 0 else 0.0
        width = 24
        filled = int(width * done / self.steps)
        val = f" val {self.val:.3f}" if self.val is not None else ""
        self.out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] step {done}/{self.steps} loss "
                       f"{record['loss']:.3f}{val} | {rate * self.tokens_per_step:,.0f} tokens/s | ETA "
                       f"{_duration(eta)}\x1b[K")
        self.out.flush()

    def close(self) -> None:
        if self.shown:
            self.out.write("\n")
            self.out.flush()
            self.shown = False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
