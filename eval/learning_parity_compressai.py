"""CompressAI side of `eval/learning_parity.py`; run with the reference interpreter (torch + CompressAI).

Standalone (never imports jaxlic). Trains one CompressAI model on the first `--steps` batches of
`--batches` (uint8 [steps, B, S, S, 3], NHWC) with CompressAI's examples/train.py step, and every
`--eval-every` steps evaluates the images of `--kodak` (an .npz of uint8 HWC arrays) in eval mode.
Prints, per step, `STEP <step> <loss> <seconds of training since step 1>`, after an evaluation
`EVAL [{"bits_y", "bits_z", "pixels", "mse", "live_z"}, ...]`, and once `INFO {...}`. With
`--ckpt`, the training state is saved after every evaluation and a present checkpoint is resumed
(`RESUMED <step>` first).

Inputs are made contiguous NCHW before they reach the model: torch 2.14.1's CPU convolutions
corrupted the heap ("free(): invalid next size") on the permuted (channels-last) view here.
"""

import argparse
import json
import os

import harness  # eval/harness.py: this script's folder is on the path
import numpy as np
import torch
from train_speed_compressai import build, make_train_step


def hyper_parts(net):
    """(h_a, entropy_bottleneck) of either model style (latent codecs or attributes)."""
    if hasattr(net, "latent_codec"):
        hyper = net.latent_codec.latent_codec["hyper"]
        return hyper.h_a, hyper.entropy_bottleneck
    return net.h_a, net.entropy_bottleneck


@torch.no_grad()
def evaluate(net, kodak):
    net.eval()
    h_a, eb = hyper_parts(net)
    rows = []
    for _, img in sorted(kodak.items(), key=lambda kv: int(kv[0].split("_")[1])):
        x = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous().float() / 255.0
        out = net(x)
        y = net.g_a(x)
        z = h_a(torch.abs(y) if type(net).__name__ == "ScaleHyperprior" else y)
        z_hat = eb.quantize(z, "dequantize", eb._get_medians())
        flat = z_hat[0].reshape(z_hat.shape[1], -1)
        rows.append(
            {
                "bits_y": float(-torch.log2(out["likelihoods"]["y"]).sum()),
                "bits_z": float(-torch.log2(out["likelihoods"]["z"]).sum()),
                "pixels": int(x.shape[2] * x.shape[3]),
                "mse": float(torch.mean((out["x_hat"].clamp(0, 1) - x) ** 2)),
                "live_z": int((flat.max(dim=1).values > flat.min(dim=1).values).sum()),
            }
        )
    net.train()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--N", type=int, required=True)
    ap.add_argument("--M", type=int, required=True)
    ap.add_argument("--lmbda", type=float, required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument(
        "--ckpt", default=None, help="training state, written at every evaluation; resumed if present"
    )
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    batches = np.load(args.batches, mmap_mode="r")
    kodak = dict(np.load(args.kodak).items())
    net = build(args.model, args.N, args.M).train()
    step = make_train_step(net, args.lmbda, args.lr)
    print(
        "INFO "
        + json.dumps(
            {**harness.versions("torch"), "threads": torch.get_num_threads(), "class": type(net).__name__}
        ),
        flush=True,
    )
    opt, aux_opt = step.optimizers
    t_train, start = 0.0, 0
    if args.ckpt and os.path.exists(args.ckpt):
        saved = torch.load(args.ckpt, weights_only=False)
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        aux_opt.load_state_dict(saved["aux_opt"])
        torch.set_rng_state(saved["rng"])
        start, t_train = saved["step"], saved["t_train"]
        print(f"RESUMED {start}", flush=True)
    for i in range(start, args.steps):
        x = torch.from_numpy(np.array(batches[i])).permute(0, 3, 1, 2).contiguous().float() / 255.0
        loss, seconds = harness.timed(lambda x=x: step(x).item())
        if i > start:  # like the jaxlic side: a process's first step is not timed
            t_train += seconds
        print(f"STEP {i + 1} {loss!r} {t_train!r}", flush=True)
        if (i + 1) % args.eval_every == 0 or i + 1 == args.steps:
            print("EVAL " + json.dumps(evaluate(net, kodak)), flush=True)
            if args.ckpt:
                state = {"net": net.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict()}
                state.update(rng=torch.get_rng_state(), step=i + 1, t_train=t_train)
                torch.save(state, args.ckpt + ".tmp")
                os.replace(args.ckpt + ".tmp", args.ckpt)


if __name__ == "__main__":
    main()
