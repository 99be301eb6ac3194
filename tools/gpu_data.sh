#!/usr/bin/env bash
# Prepares the training photos and Kodak for a device run inside the 64 MiB that travel with the
# work tree: ../shared does not travel, and the 580 photos (46 MB) plus the wheels of .whl/
# (about 19 MiB) do not fit. Each photo is resized so that its short side is SIDE pixels (it
# stays above the 256 px crop) and re-encoded as JPEG quality 80; four Kodak images are copied for validation.
#
#   tools/gpu_data.sh [SRC] [DST] [SIDE]      # defaults: ../shared/data .gpu_data 288
#   du -sh .gpu_data .whl                     # check: with the tracked files (about 20 MB) under 64 MiB
#   run(command="OUT=$OUT tools/gpu_run.sh .gpu_data/train", carry=[".whl", ".gpu_data"])
#
# .gpu_data/ is git-ignored. gpu_run.sh finds .gpu_data/kodak next to .gpu_data/train.
set -euo pipefail
SRC=${1:-../shared/data}
DST=${2:-.gpu_data}
SIDE=${3:-288}
PY=${PYTHON:-python3}
mkdir -p "$DST/train" "$DST/kodak"
cp "$SRC"/kodak/kodim0[1-4].png "$DST/kodak/"  # validation needs only a few
"$PY" - "$SRC/train" "$DST/train" "$SIDE" <<'PY'
import pathlib, sys
from PIL import Image

src, dst, side = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
n = 0
for path in sorted(p for p in src.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = side / min(im.size)
            if scale < 1:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
            out = dst / (str(path.relative_to(src)).replace("/", "_").rsplit(".", 1)[0] + ".jpg")
            im.save(out, quality=80)
            n += 1
    except OSError as e:
        print(f"skipped {path}: {e}", file=sys.stderr)
print(f"{n} photos written to {dst}")
PY
du -sh "$DST"
