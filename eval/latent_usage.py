"""Which latent channels does a model use? Rate per channel of y and z, and the checkerboard split.

    python -m eval.latent_usage --weights jaxlic/pretrained/ckbd-full-q2.msgpack \
        --images ../shared/data/kodak --num 6 --json results/latent_usage.json

A diagnostic for training, from the model's own likelihoods (`Codec.forward_eval`, rounded
latents, the rates the range coder spends up to its header): the share of the rate in z, how many
channels of z and y carry information (their quantised values are not constant over the image;
mean over the images), the mean rate of each channel, and for
checkerboard models the rate of the anchors (coded from the hyperprior alone) against the
non-anchors (hyperprior + context). A hyperprior whose z has a handful of live channels and
under 1% of the rate has collapsed: the anchors are then coded with nearly fixed distributions.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np


def latent_usage(codec, images, rate: float | None = None) -> dict:
    """Rate statistics of `codec` over `images` (uint8 HxWx3 arrays); see the module docstring.

    `rate`: a variable-rate model's rate parameter (default: its default rate).

    Returns:
      dict with `bpp`, `bpp_y`, `bpp_z`, `z_share`, `z_live_channels`, `y_live_channels` (mean
      number of channels whose quantised values vary over an image),
      `z_channels`, `y_channels`, `z_bits_per_channel` and `y_bits_per_channel` (mean bits per
      element, per channel) and, for checkerboard models, `bpp_anchors` and `bpp_nonanchors`.
    """
    from jaxlic.latent.schedules import Checkerboard
    from jaxlic.layers.context import anchor_mask  # pylint: disable=g-import-not-at-top

    checkerboard = isinstance(codec.model.latent.schedule, Checkerboard)
    sums = {"y": 0.0, "z": 0.0, "anchors": 0.0, "nonanchors": 0.0}
    per_channel = {"y": [], "z": []}
    live = {"y": [], "z": []}
    for img in images:
        out = codec.forward_eval(img) if rate is None else codec.forward_eval(img, rate)
        pixels = img.shape[0] * img.shape[1]
        for k in ("y", "z"):
            bits = -np.log2(np.asarray(out["likelihoods"][k], np.float64)[0])  # [h, w, C]
            sums[k] += bits.sum() / pixels
            per_channel[k].append(bits.reshape(-1, bits.shape[-1]).mean(0))
            values = np.asarray(out[f"{k}_hat"])[0].reshape(-1, bits.shape[-1])
            live[k].append(int(np.sum(values.max(0) > values.min(0))))
            if k == "y" and checkerboard:
                a = np.asarray(anchor_mask(bits.shape[0], bits.shape[1], bool))[0, :, :, 0]
                sums["anchors"] += bits[a].sum() / pixels
                sums["nonanchors"] += bits[~a].sum() / pixels
    n = len(images)
    result = {"images": n}
    result["bpp_y"], result["bpp_z"] = sums["y"] / n, sums["z"] / n
    result["bpp"] = result["bpp_y"] + result["bpp_z"]
    result["z_share"] = result["bpp_z"] / result["bpp"] if result["bpp"] else 0.0
    for k in ("y", "z"):
        mean = np.mean(per_channel[k], axis=0)
        result[f"{k}_channels"] = int(mean.size)
        result[f"{k}_live_channels"] = float(np.mean(live[k]))
        result[f"{k}_bits_per_channel"] = [round(float(v), 5) for v in mean]
    if checkerboard:
        result["bpp_anchors"] = sums["anchors"] / n
        result["bpp_nonanchors"] = sums["nonanchors"] / n
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="weights file (default: the shipped default model)")
    ap.add_argument("--images", help="folder of PNG/JPEG images (default: scikit-image samples)")
    ap.add_argument("--num", type=int, default=6, help="at most this many images")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)

    from jaxlic import image_io, zoo  # pylint: disable=g-import-not-at-top

    codec = zoo.load(weights=args.weights)
    if args.images:
        from jaxlic.image_io import list_images  # pylint: disable=g-import-not-at-top

        files = list_images(args.images, args.num)
        if not files:
            raise SystemExit(f"no images in {args.images}")
        images = [image_io.read_image(f)[0] for f in files]
    else:
        images = [image_io.sample_image(n) for n in ("astronaut", "coffee", "chelsea")][: args.num]
    r = latent_usage(codec, images)
    print(
        f"{codec.name}: {r['images']} images, {r['bpp']:.4f} bpp = y {r['bpp_y']:.4f} + "
        f"z {r['bpp_z']:.5f} (z share {100 * r['z_share']:.2f}%)"
    )
    print(
        f"live channels (values not constant over an image, mean): z {r['z_live_channels']:.1f} "
        f"of {r['z_channels']}, y {r['y_live_channels']:.1f} of {r['y_channels']}"
    )
    if "bpp_anchors" in r:
        print(
            f"checkerboard: anchors {r['bpp_anchors']:.4f} bpp, non-anchors "
            f"{r['bpp_nonanchors']:.4f} bpp (ratio {r['bpp_anchors'] / r['bpp_nonanchors']:.2f})"
        )
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"weights": args.weights, **r}, indent=2))
    return r


if __name__ == "__main__":
    main()
