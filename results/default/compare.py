"""The new default against the old one, per image at matched rate (ΔPSNR with 95% CI, BD-rate).

  python results/default/compare.py results/default/per_image_ckbd-full-vr-4000steps.csv \
      results/default/per_image_ckbd-full-vr-2000steps.csv > results/default/compare.txt

Against the classical codecs: `jaxlic compare results/kodak/per_image_ckbd-full-vr.csv
results/kodak/per_image_codecs.csv --codecs webp,jpeg2000`.
"""

import sys

from jaxlic.evaluation import matched

new = matched.read_rows(sys.argv[1])
old = matched.read_rows(sys.argv[2])
for r in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4):
    g = matched.gain_at_rate(new, old, r)
    print(
        f"new - old at {r} bpp: {g['mean_db']:+.3f} dB [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}] "
        f"n={g['n']} out={g['outside']}"
    )
bd = matched.bd_rate_per_image(new, old)
print(f"BD-rate new vs old: {bd['mean_pct']:+.2f}% [{bd['ci95'][0]:+.2f}, {bd['ci95'][1]:+.2f}]")
