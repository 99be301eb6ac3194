"""CompressAI side of `eval/train_speed.py`; run with the reference interpreter (torch + CompressAI).

Standalone (never imports jaxlic). Builds one CompressAI model, then serves timing requests
(eval/worker.py's line protocol) so the caller can interleave them with its own runs:

  -> {"ready": [model], "device", "torch", "threads"}   once the model is built and warmed up
  <- steps K
  -> {"times": [t1, ..., tK]}                            seconds per training step

A training step is CompressAI's examples/train.py step: forward, RD loss
(lmbda * 255^2 * MSE + bpp), backward, global-norm clipping, Adam on the main parameters, then
the aux loss and its Adam on the quantiles.
"""

import argparse
import math

import harness  # eval/harness.py and eval/worker.py: this script's folder is on the path
import torch
from worker import serve

CLASSES = {
    "cheng2020-anchor": ("compressai.models", "Cheng2020Anchor", False),
    "cheng2020-attn": ("compressai.models", "Cheng2020Attention", False),
    "ckbd": ("compressai.models.sensetime", "Cheng2020AnchorCheckerboard", False),
    "mbt2018": ("compressai.models", "JointAutoregressiveHierarchicalPriors", True),
    "mbt2018-mean": ("compressai.models", "MeanScaleHyperprior", True),
    "bmshj2018-hyperprior": ("compressai.models", "ScaleHyperprior", True),
}


def build(name, n, m):
    import importlib

    module, cls, takes_m = CLASSES[name]
    cls = getattr(importlib.import_module(module), cls)
    return cls(N=n, M=m) if takes_m else cls(N=n)


def make_train_step(net, lmbda, lr=1e-4):
    """CompressAI's examples/train.py step on `net`: returns `step(x) -> loss` (x: NCHW in [0, 1])."""
    main_params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)

    def step(x):
        num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
        opt.zero_grad()
        aux_opt.zero_grad()
        out = net(x)
        bpp = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-math.log(2) * num_pixels)
        loss = lmbda * 255**2 * torch.nn.functional.mse_loss(out["x_hat"], x) + bpp
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        aux = net.aux_loss()
        aux.backward()
        aux_opt.step()
        return loss

    step.optimizers = (opt, aux_opt)  # for checkpoints (eval/learning_parity_compressai.py)
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cheng2020-anchor", choices=sorted(CLASSES))
    ap.add_argument("--N", type=int, default=128)
    ap.add_argument("--M", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--lmbda", type=float, default=0.0067)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    net = build(args.model, args.N, args.M).to(device).train()
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    train_step = make_train_step(net, args.lmbda)

    def step():
        train_step(x)
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()

    def steps(k):
        return {"times": harness.repeat(step, int(k))[1]}

    about = {"device": device, **harness.versions("torch"), "threads": torch.get_num_threads()}
    serve({"steps": steps}, [args.model], about)


if __name__ == "__main__":
    main()
