"""Start-up time of the ``centernet`` command: how long a newcomer waits before anything happens.

Runs each command line ``--rounds`` times in a fresh process (after one unmeasured run, so the
file cache is warm) and prints the median and the spread beside the goal, with the heavy modules
the process imported (a command's help should import neither torch nor Lightning). The last row,
``import torch``, is what any command that runs a model pays at least, for scale.

    python benchmarks/cli_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "lightning", "torchvision", "timm", "cv2", "onnxruntime")
# (what is timed, the Python code the process runs, the goal in seconds or None)
CASES: list[tuple[str, str, float | None]] = [
    ("centernet --help", "main(['--help'])", 1.5),
    ("centernet --version", "main(['--version'])", 1.5),
    ("centernet predict --help", "main(['predict', '--help'])", 3.0),
    ("centernet track --help", "main(['track', '--help'])", 3.0),
    ("centernet export --help", "main(['export', '--help'])", 3.0),
    ("import centernet_lightning", "pass", None),
    ("import torch (for scale)", "import torch", None),
]
PROGRAM = """
import sys
from centernet_lightning.cli import main
try:
    {code}
except SystemExit:
    pass
heavy = sorted(name for name in {heavy!r} if name in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def time_once(code: str) -> tuple[float, str]:
    """Wall seconds of one fresh process running ``code``, and the heavy modules it imported."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(code=code, heavy=HEAVY)], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    heavy = next(line[6:] for line in done.stderr.splitlines() if line.startswith("HEAVY="))
    return seconds, heavy or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured runs per command (default 7)")
    args = parser.parse_args()
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7} {'goal s':>7}  {'met':<4} heavy imports")
    for label, code, goal in CASES:
        time_once(code)  # warm the file cache
        samples, heavy = [], "-"
        for _ in range(args.rounds):
            seconds, heavy = time_once(code)
            samples.append(seconds)
        median = statistics.median(samples)
        met = "-" if goal is None else ("yes" if median <= goal else "NO")
        goal_text = "-" if goal is None else f"{goal:.1f}"
        print(f"{label:<28} {median:>9.2f} {min(samples):>7.2f} {max(samples):>7.2f} {goal_text:>7}  {met:<4} {heavy}")


if __name__ == "__main__":
    main()
