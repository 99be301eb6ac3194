"""New default against the old, per image at matched rate, then against WebP and JPEG 2000.

  python results/default/compare.py results/default/per_image_ckbd-full-vr-4000steps.csv \
      results/default/per_image_ckbd-full-vr-2000steps.csv results/kodak/summary.json
"""

import json
import sys

from jaxlic.evaluation import matched

new = matched.read_rows(sys.argv[1])
old = matched.read_rows(sys.argv[2])
for r in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4):
    g = matched.gain_at_rate(new, old, r)
    print(
        f"new - old at {r} bpp: {g['mean_db']:+.3f} dB [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}] n={g['n']} out={g['outside']}"
    )
bd = matched.bd_rate_per_image(new, old)
print(f"BD-rate new vs old: {bd['mean_pct']:+.2f}% [{bd['ci95'][0]:+.2f}, {bd['ci95'][1]:+.2f}]")
s = json.load(open(sys.argv[3]))["matched_rate"]
for k, v in s.items():
    if k.startswith("ckbd-full-vr"):
        w, j = v["webp"], v["jpeg2000"]
        f = lambda x: (
            "n/a"
            if x["mean_db"] is None
            else f"{x['mean_db']:+.2f} [{x['ci95'][0]:+.2f}, {x['ci95'][1]:+.2f}] ({x['n']})"
        )
        print(f"{k}: {w['mean_bpp']:.4f} bpp | webp {f(w)} | jpeg2000 {f(j)}")
