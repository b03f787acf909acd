"""The loss curve: `metrics.jsonl` (one JSON object per optimizer step: `step` from 1, the training `loss` of
that step's batch, the learning rate `lr` it used, and `val_loss`, the held-out loss after it, at each evaluation)
and `loss.svg`, a picture of both, written directly (no plotting library)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..output import write_output, write_output_bytes

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "loss.svg"


def read_metrics(folder: Path, up_to: int) -> list[dict]:
    """The records of an earlier run in `folder` up to step `up_to` (a killed run may have logged steps past its
    last checkpoint: a resumed run redoes them)."""
    path = folder / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut short by a kill
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= up_to:
            records.append(record)
    return records


class Metrics:
    """metrics.jsonl: rewritten atomically with the records so far when a run starts, then one line appended and
    flushed per step."""

    def __init__(self, folder: Path, records: list[dict]):
        self.path = folder / METRICS_FILE
        self.records = list(records)
        write_output_bytes("".join(json.dumps(r) + "\n" for r in records).encode("utf-8"), str(self.path))
        self.file = open(self.path, "a", encoding="utf-8")

    def add(self, record: dict) -> None:
        self.records.append(record)
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 400, 60, 20, 30, 45


def svg(records: list[dict], title: str) -> str:
    """Training loss (blue line) and held-out loss (orange points joined) against the step."""
    train = [(r["step"], r["loss"]) for r in records if _finite(r.get("loss"))]
    val = [(r["step"], r["val_loss"]) for r in records if _finite(r.get("val_loss"))]
    points = train + val
    if not points:
        return _frame(title, "")
    x_hi = max(s for s, _ in points) or 1
    y_lo, y_hi = min(v for _, v in points), max(v for _, v in points)
    if y_hi - y_lo < 1e-9:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5

    def xy(step, value):
        x = LEFT + (W - LEFT - RIGHT) * step / x_hi
        y = TOP + (H - TOP - BOTTOM) * (y_hi - value) / (y_hi - y_lo)
        return f"{x:.1f},{y:.1f}"

    parts = []
    for i in range(5):  # horizontal grid with the loss values
        value = y_lo + (y_hi - y_lo) * i / 4
        y = TOP + (H - TOP - BOTTOM) * (y_hi - value) / (y_hi - y_lo)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    parts.append(f'<text x="{W - RIGHT}" y="{H - BOTTOM + 18}" text-anchor="end">step {x_hi}</text>'
                 f'<text x="{LEFT}" y="{H - BOTTOM + 18}">0</text>')
    if train:
        parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.2" '
                     f'points="{" ".join(xy(s, v) for s, v in train)}"/>')
    if val:
        parts.append(f'<polyline fill="none" stroke="#ff7f0e" stroke-width="2" '
                     f'points="{" ".join(xy(s, v) for s, v in val)}"/>')
        parts += [f'<circle cx="{xy(s, v).split(",")[0]}" cy="{xy(s, v).split(",")[1]}" r="3" fill="#ff7f0e"/>'
                  for s, v in val]
    parts.append(f'<text x="{W - RIGHT}" y="{TOP - 10}" text-anchor="end"><tspan fill="#1f77b4">training loss'
                 '</tspan>  <tspan fill="#ff7f0e">held-out loss</tspan></text>')
    return _frame(title, "".join(parts))


def _frame(title: str, body: str) -> str:
    from html import escape

    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
            'font-family="sans-serif" font-size="12">'
            f'<rect width="{W}" height="{H}" fill="white"/>'
            f'<text x="{LEFT}" y="{TOP - 10}" font-weight="bold">{escape(title)}</text>'
            f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" '
            f'stroke="#888"/>{body}</svg>\n')


def write_curve(folder: Path, records: list[dict], title: str) -> None:
    write_output(svg(records, title), str(folder / CURVE_FILE))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
