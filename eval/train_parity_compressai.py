"""CompressAI side of `eval/train_parity.py`; run with the reference interpreter (torch + CompressAI).

Standalone (never imports jaxlic). Trains one CompressAI model on the batches in `--batches`
(uint8 [steps, B, S, S, 3], NHWC) with CompressAI's examples/train.py step (RD loss
lmbda * 255^2 * MSE + bpp, backward, global-norm clipping at 1.0, Adam; then the aux loss and its
Adam at 1e-3), evaluates it on the images of `--kodak` (an .npz of uint8 HWC arrays) in eval mode,
and prints `RESULT {json}` with the training losses, the seconds of steps 2..N and per-image
(bpp, mse).
"""

import argparse
import json
import time

import numpy as np
import torch
from train_speed_compressai import build, make_train_step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", required=True)
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--N", type=int, required=True)
    ap.add_argument("--M", type=int, required=True)
    ap.add_argument("--lmbda", type=float, required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=50)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    batches = np.load(args.batches, mmap_mode="r")
    net = build(args.model, args.N, args.M).train()
    step = make_train_step(net, args.lmbda, args.lr)

    losses = []
    t0 = time.perf_counter()
    for i in range(batches.shape[0]):
        x = torch.from_numpy(np.array(batches[i])).permute(0, 3, 1, 2).contiguous().float() / 255.0
        loss = step(x)
        losses.append(loss.item())
        if i == 0:
            t0 = time.perf_counter()  # time steps 2..N, like the jaxlic side (no compile there)
        if (i + 1) % args.log_every == 0:
            print(f"  CompressAI step {i + 1}: loss {np.mean(losses[-args.log_every :]):.4f}", flush=True)
    seconds = time.perf_counter() - t0

    net.eval()
    per_image = []
    with torch.no_grad():
        for _, img in sorted(np.load(args.kodak).items(), key=lambda kv: int(kv[0].split("_")[1])):
            x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous().float() / 255.0
            out = net(x)
            bits = sum(-torch.log2(l).sum() for l in out["likelihoods"].values())
            mse = torch.mean((out["x_hat"].clamp(0, 1) - x) ** 2)
            per_image.append((float(bits) / (x.shape[2] * x.shape[3]), float(mse)))
    print(
        "RESULT "
        + json.dumps(
            {
                "losses": losses,
                "seconds": seconds,
                "per_image": per_image,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
