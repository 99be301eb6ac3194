"""The validation lines of a training log (a pilot's, the long run's) as a short progress record
(2 Kodak images, rate parameters 0, 3, 7).

  python -m results.default.validation_record runs/pilots/z-none.log results/default/pilots/z-none.validation.txt

`results/default/pilots.sh` writes it after every training invocation of a pilot (also one that
SIGTERM stopped), so that the record committed at a stop says how far the pilot got; the long run's is
`long.validation.txt`, from `runs/long/train.log`.
"""

from __future__ import annotations

import ast
import re
import sys


def main(log: str, out: str) -> int:
    lines = []
    for line in open(log, errors="replace"):
        m = re.search(r"step (\d+) validation: .*?\| (\{.*\})$", line.strip())
        if not m:
            continue
        d = ast.literal_eval(m.group(2))
        cells = [f"step {m.group(1)}"]
        for q in (0, 3, 7):
            cells.append(
                f"q{q}: loss {d[f'loss_q{q}']:.4f} psnr {d[f'psnr_q{q}']:.2f} bpp {d[f'bpp_q{q}']:.4f} live z {d.get(f'live_z_channels_q{q}', float('nan')):.1f}"
            )
        lines.append(" | ".join(cells))
    open(out, "w").write(f"# validation (2 Kodak images), from {log}\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
