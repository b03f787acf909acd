"""Start-up of the core commands: cold (TTSPEC_NO_CACHE=1) whole-process `ttspec params`, `check`,
`plan` and `compile --target galaxy` of Llama-3.1-70B, each beside peers measured in the same run:
`python -c pass` (the interpreter's own start-up: the floor no command goes under) and
`python -c "import torch"` (what a core command would cost if it imported torch; it must not).

Python's bytecode caches are on, as an installed ttspec has them (PYTHONDONTWRITEBYTECODE dropped), kept in
a temporary PYTHONPYCACHEPREFIX so the tree and the virtual environment are left alone.

Issue 19 wants each command under 0.2 s median. Timings measure the machine's load as much as the
work: run it on a quiet machine, and compare commands with the `python -c pass` floor of the same run.
Run: .venv/bin/python bench/core_startup.py [--runs N] [--no-torch]

Measured 2026-12-07 on the 2-core machine, load average 2.3 (another session's pytest running), 9 runs,
`--no-torch`, the merged issue-19 tree before and after its start-up work, back to back:

    command                          before    after   (python -c pass: 28 ms)
    ttspec params                    189 ms   182 ms
    ttspec check                     191 ms   180 ms
    ttspec plan --target galaxy      223 ms   196 ms
    ttspec compile --target galaxy   298 ms   243 ms   still over the budget

Then (same day, branch h-startup on 18315e8, the machine shared by five sessions: load average 3.5-4),
the parser run from lark's pre-compiled tables, the prelude's AST shipped, and ~50 classes made records
instead of dataclasses. Wall medians of 9 runs of this script, before (18315e8) and after, back to back,
and CPU time (user + system, medians of 9 runs interleaved between the two trees, load 3.6):

    command                          wall before  after    CPU before  after
    ttspec params                      202 ms     134 ms     194 ms    105 ms
    ttspec check                       204 ms     158 ms     196 ms    101 ms
    ttspec plan --target galaxy        225 ms     163 ms     215 ms    119 ms
    ttspec compile --target galaxy     291 ms     202 ms     264 ms    171 ms
    python -c pass                      35 ms      33 ms      31 ms     31 ms

(On the quiet machine earlier that day, load 0.8, the before column read 168, 177, 190 and 233 ms.)

What the 0.2 s goes to now (in-process, compile): the interpreter ~30 ms; imports ~85 ms, of which
Python's own modules ~37 ms (inspect and ast for the dataclasses still made at import by the ops, the
IR graph, the pass pipeline, the backends and the cost model; typing; argparse) and ttspec's ~45 ms
(backends/common ~10, ops ~9, ir ~4, analysis ~4, passes ~4, families ~3; the front end and elaborator
~4); parsing the spec ~2 ms and elaborating ~4 ms; lowering, sharding and weighing both strategies
~3 ms once their modules are imported; for compile, ~30 ms of backend work (reading the runtime
modules with `ast` and `symtable` to name and inline them, printing).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "llama-3.1-70b.arch"
TTSPEC = [sys.executable, "-m", "ttspec.cli"]
BUDGET_S = 0.2


def commands(out_dir: str) -> dict[str, list[str]]:
    spec = str(SPEC)
    return {
        "ttspec params": TTSPEC + ["params", spec],
        "ttspec check": TTSPEC + ["check", spec],
        "ttspec plan --target galaxy": TTSPEC + ["plan", spec, "--target", "galaxy"],
        "ttspec compile --target galaxy": TTSPEC + ["compile", spec, "--target", "galaxy", "-o",
                                                    str(Path(out_dir) / "llama_70b_galaxy.py")],
    }


def peers(torch: bool) -> dict[str, list[str]]:
    out = {"python -c pass": [sys.executable, "-c", "pass"]}
    if torch:
        out['python -c "import torch"'] = [sys.executable, "-c", "import torch"]
    return out


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system: what load on a shared machine inflates least)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, env=env, check=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15, help="runs of each command (interleaved)")
    ap.add_argument("--no-torch", action="store_true", help="leave out the `import torch` peer")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ttspec-bench-") as out_dir:
        env = dict(os.environ, TTSPEC_NO_CACHE="1", PYTHONPYCACHEPREFIX=str(Path(out_dir) / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        measured = {**commands(out_dir), **peers(not args.no_torch)}
        for cmd in measured.values():  # once each before timing: bytecode and the OS's file cache, not ours
            timed(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in measured}
        cpu: dict[str, list[float]] = {name: [] for name in measured}
        for _ in range(args.runs):  # interleaved, so a burst of load slows every command alike
            for name, cmd in measured.items():
                wall, used = timed(cmd, env)
                times[name].append(wall)
                cpu[name].append(used)
    floor = statistics.median(times["python -c pass"])
    print(f"{SPEC.name}, cold (TTSPEC_NO_CACHE=1), whole processes, median of {args.runs} runs; "
          f"budget {BUDGET_S * 1e3:.0f} ms")
    over = []
    for name, runs in times.items():
        median = statistics.median(runs)
        verdict = "" if name not in commands("") else ("  ok" if median < BUDGET_S else "  OVER BUDGET")
        if verdict == "  OVER BUDGET":
            over.append(name)
        print(f"  {name:<32} median {median * 1e3:7.1f} ms  (min {min(runs) * 1e3:6.1f}, "
              f"{median - floor:+.3f} s over the interpreter; CPU {statistics.median(cpu[name]) * 1e3:6.1f} ms)"
              f"{verdict}")
    if over:
        print(f"over {BUDGET_S * 1e3:.0f} ms: {', '.join(over)} (see the load on the machine: `uptime`)")


if __name__ == "__main__":
    main()
