"""Latent rollout: lss_jax.rollout against the authors' PyTorch stepping loop, rebuilt, in the same run.

The authors' propagator (Ferg-Lab/mdn_propagator, ``Propagator.gen_synthetic_traj`` and ``propagate``)
advances latent points with a Python loop that calls the MDN in torch at every step and samples the
Gaussian mixture with ``torch.distributions``: a ``OneHotCategorical`` draw of the component, a
``Normal`` draw for *every* component, and the one-hot-weighted sum, then ``clip(0, 1)``. This script
rebuilds that loop in PyTorch (CPU, float32, ``torch.no_grad()``, ``torch.set_num_threads(n)``, ``n`` the cores this
process may run on)
for the Trp-cage propagator size used throughout (latent 3, C = 24, two hidden layers of 100 ReLU,
head giving logits, sigmoid means and softplus scales exactly as :class:`lss_jax.MDN`, whose weights
are copied in) and generalizes it to a batch of B trajectories. Two torch variants are timed:

* ``torch_faithful``: the authors' code path as written (``mdn_propagator`` ``MixtureDensityNetwork.forward``
  and ``sample`` inside ``Propagator.gen_synthetic_traj``): the head split into logits, means and scales
  with their ``split``/``stack``/``transpose``, sigmoid means and ``elu + 1 + 1e-7`` scales, one
  ``OneHotCategorical`` and one ``Normal`` object per step, a draw from *every* component masked by the
  one-hot sample, ``clip(0, 1)``, the min-max scaler around the loop and the ``tqdm`` bar (to /dev/null);
* ``torch_authors``: the same sampling path on lss_jax's head layout (softplus scales), without the scaler
  and the bar (the baseline of earlier runs);
* ``torch_lean``: the same loop with ``torch.multinomial`` + ``gather`` + one ``randn`` (a
  hand-optimized torch loop, to show how much of the gap is the sampling code rather than the loop).

Left out of the torch loop, in its favour: the ``tqdm`` progress bar and the min-max scaler calls
of the original. Each variant runs B x n_steps trajectory-steps; ``lss_jax.rollout`` runs the same
B and n_steps (one jitted ``lax.scan``); its compile time is measured separately and excluded.
Reported: trajectory-steps per second (B x n_steps / s) and the ratio JAX / PyTorch.

Both sides get every core: torch through its intra-op threads (``torch_threads``), JAX through one XLA
host device per core (:func:`lss_jax.use_every_core`, what ``lss-jax generate`` does) and ``rollout(...,
devices=jax.devices())`` (``jax_all_cores``; the issue's target is read on it). XLA's CPU backend runs
matmuls this small on one core per device, so one device (``jax_one_device``, kept beside) leaves cores
idle. ``--host-devices 1`` gives JAX one device only; ``taskset -c 0 python ... --host-devices 1`` pins both sides
to one core (torch then runs one thread).

PyTorch is a benchmark-only dependency (``pip install torch==2.13.0``).

    python benchmarks/perf/peer_pytorch.py            # B = 1, 1024 -> benchmarks/results/peer_pytorch-<backend>.json
    python benchmarks/perf/peer_pytorch.py --quick    # fewer steps, one repeat (< 1 min)
    python benchmarks/perf/peer_pytorch.py --batch 1 64 1024 4096 --out /tmp/peer.json
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from lss_jax import MDN, mdn_apply_fn, rollout, use_every_core
from lss_jax.benchmarking import benchmark_parser, load_average, machine_facts, write_results

RESULTS = Path(__file__).resolve().parents[1] / "results"
LATENT, COMPONENTS, HIDDEN = 3, 24, (100, 100)
SCALE_FLOOR = 1e-3
JAX_VARIANTS = ("jax_one_device", "jax_all_cores")


def _import_torch():
    try:
        import torch
    except ImportError:
        sys.exit("benchmarks/perf/peer_pytorch.py needs PyTorch (a benchmark-only dependency): pip install torch==2.13.0")
    return torch


def build_torch_mdn(torch, model: MDN):
    """A torch ``nn.Module`` with the layer sizes and weights of ``model`` (an :class:`lss_jax.MDN`)."""
    nn = torch.nn
    F = torch.nn.functional
    c, m = model.n_components, model.latent_dim

    class TorchMDN(nn.Module):
        def __init__(self):
            super().__init__()
            linears = [*model.layers, model.head]
            self.linears = nn.ModuleList([nn.Linear(*np.shape(lin.kernel[...])) for lin in linears])
            with torch.no_grad():
                for t, lin in zip(self.linears, linears):
                    t.weight.copy_(torch.from_numpy(np.asarray(lin.kernel[...]).T.copy()))
                    t.bias.copy_(torch.from_numpy(np.asarray(lin.bias[...]).copy()))

        def forward(self, x):
            h = x
            for lin in self.linears[:-1]:
                h = F.relu(lin(h))
            out = self.linears[-1](h)
            logits = out[:, :c]
            means = torch.sigmoid(out[:, c : c + c * m]).reshape(-1, c, m)
            scales = F.softplus(out[:, c + c * m :]).reshape(-1, c, m) + SCALE_FLOOR
            return logits, means, scales

    return TorchMDN().float().eval()


def build_torch_mdn_faithful(torch, model: MDN):
    """The authors' ``MixtureDensityNetwork`` head on ``model``'s hidden layers: ``forward`` returns the
    ``OneHotCategorical`` and ``Normal`` objects, with their means/scales layout, sigmoid and ``elu + 1 + 1e-7``."""
    from torch.distributions import Normal, OneHotCategorical

    nn, F = torch.nn, torch.nn.functional
    c = model.n_components
    base = build_torch_mdn(torch, model)

    class FaithfulMDN(nn.Module):
        def __init__(self):
            super().__init__()
            self.linears = base.linears

        def forward(self, x):
            h = x
            for lin in self.linears[:-1]:
                h = F.relu(lin(h))
            out = self.linears[-1](h)
            pi = OneHotCategorical(logits=out[..., :c])
            params = out[..., c:]
            mean, sd = torch.split(params, params.shape[1] // 2, dim=1)
            mean = torch.stack(mean.split(mean.shape[1] // c, 1))
            sd = torch.stack(sd.split(sd.shape[1] // c, 1))
            return pi, Normal(torch.sigmoid(mean).transpose(0, 1), (F.elu(sd) + 1 + 1e-7).transpose(0, 1))

        def sample(self, x):
            pi, normal = self.forward(x)
            return torch.sum(pi.sample().unsqueeze(2) * normal.sample(), dim=1)

    return FaithfulMDN().float().eval()


def faithful_loop(torch, net, x0, n_steps: int, low, high):
    """``Propagator.gen_synthetic_traj`` (k = 1) for a batch: scaler, loop with a tqdm bar, inverse scaler."""
    from tqdm import tqdm

    with torch.no_grad(), open(os.devnull, "w") as devnull:
        x = ((x0 - low) / (high - low)).float()
        xs = []
        for _ in tqdm(range(int(n_steps)), file=devnull):
            x = net.sample(x).clip(0, 1)
            xs.append(x)
        xs = torch.stack(xs, dim=1)
        return xs * (high - low) + low


def sample_authors(torch, net, x):
    """One step as in mdn_propagator's ``MixtureDensityNetwork.sample``: every component is drawn."""
    from torch.distributions import Normal, OneHotCategorical

    logits, means, scales = net(x)
    pi, normal = OneHotCategorical(logits=logits), Normal(means, scales)
    return torch.sum(pi.sample().unsqueeze(2) * normal.sample(), dim=1).clip(0, 1)


def sample_lean(torch, net, x):
    """One step with a single categorical and a single normal draw per trajectory."""
    logits, means, scales = net(x)
    idx = torch.multinomial(torch.softmax(logits, dim=-1), 1)[:, :, None].expand(-1, 1, means.shape[-1])
    mean, scale = means.gather(1, idx)[:, 0], scales.gather(1, idx)[:, 0]
    return (mean + scale * torch.randn_like(mean)).clip(0, 1)


def torch_loop(torch, net, x0, n_steps: int, step_fn):
    """The ``gen_synthetic_traj`` loop, for a batch: ``[B, n_steps, m]``."""
    with torch.no_grad():
        x, xs = x0, []
        for _ in range(n_steps):
            x = step_fn(torch, net, x)
            xs.append(x)
        return torch.stack(xs, dim=1)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench(torch, batch: int, n_steps: int, repeats: int) -> dict:
    model = MDN(LATENT, COMPONENTS, HIDDEN, scale_floor=SCALE_FLOOR, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    fn = mdn_apply_fn(graphdef)
    x0 = np.random.default_rng(1).uniform(size=(batch, LATENT)).astype(np.float32)
    x0_jax = jax.numpy.asarray(x0)
    key = jax.random.key(2)

    row = {"batch": batch, "n_steps": n_steps}
    for name in JAX_VARIANTS:
        devices = jax.devices()[:1] if name == "jax_one_device" else jax.devices()

        def run_jax():
            return jax.block_until_ready(rollout(key, fn, params, x0_jax, n_steps=n_steps, devices=devices))  # noqa: B023

        first = _median_time(run_jax, 1)  # trace + compile + one execution
        jax_s = _median_time(run_jax, repeats)
        row[f"{name}_devices"] = len(devices)
        row[f"{name}_compile_seconds"] = max(first - jax_s, 0.0)
        row[f"{name}_run_seconds"] = jax_s
        row[f"{name}_steps_per_second"] = batch * n_steps / jax_s
    net = build_torch_mdn(torch, model)
    x0_torch = torch.from_numpy(x0)
    torch.manual_seed(0)
    faithful = build_torch_mdn_faithful(torch, model)
    low, high = torch.zeros(LATENT), torch.ones(LATENT)
    faithful_loop(torch, faithful, x0_torch, min(n_steps, 20), low, high)  # warm-up
    seconds = _median_time(lambda: faithful_loop(torch, faithful, x0_torch, n_steps, low, high), repeats)
    row["torch_faithful_run_seconds"] = seconds
    row["torch_faithful_steps_per_second"] = batch * n_steps / seconds
    row["torch_faithful_us_per_step"] = seconds / n_steps * 1e6
    for name, step_fn in (("torch_authors", sample_authors), ("torch_lean", sample_lean)):
        torch_loop(torch, net, x0_torch, min(n_steps, 20), step_fn)  # warm-up (allocator, thread pool)
        seconds = _median_time(lambda: torch_loop(torch, net, x0_torch, n_steps, step_fn), repeats)  # noqa: B023
        row[f"{name}_run_seconds"] = seconds
        row[f"{name}_steps_per_second"] = batch * n_steps / seconds
        row[f"{name}_us_per_step"] = seconds / n_steps * 1e6
    for jax_name in JAX_VARIANTS:
        for name in ("torch_faithful", "torch_authors", "torch_lean"):
            row[f"ratio_{jax_name}_over_{name}"] = row[f"{jax_name}_steps_per_second"] / row[f"{name}_steps_per_second"]
    return row


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="5x fewer steps, one repeat",
                              out="JSON path (default benchmarks/results/peer_pytorch-<backend>.json)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 1024])
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="steps per timed run, one per batch size (default: 5000 at B=1, 1000 otherwise)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--host-devices", type=int, default=None,
                        help="XLA host devices for jax_all_cores (default: one per core; see lss_jax.use_every_core)")
    args = parser.parse_args(argv)
    use_every_core(args.host_devices)
    torch = _import_torch()
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores it may use: 1 under taskset -c 0
    if args.steps is not None and len(args.steps) != len(args.batch):
        parser.error("--steps needs one value per --batch value")
    steps = args.steps or [5000 if b == 1 else 1000 for b in args.batch]
    if args.quick:
        steps, args.repeats = [max(50, s // 5) for s in steps], 1

    load_start = load_average()
    rows = []
    print(f"{'B':>6} {'steps':>6} {'JAX 1 dev':>10} {'JAX cores':>10} {'faithful':>10} {'authors':>10} {'lean':>10} "
          f"{'all/faithful':>12} {'all/authors':>11} {'all/lean':>9} {'1dev/authors':>12}")
    for batch, n_steps in zip(args.batch, steps):
        row = bench(torch, batch, n_steps, args.repeats)
        rows.append(row)
        print(f"{batch:>6} {n_steps:>6} {row['jax_one_device_steps_per_second']:>10.3g} "
              f"{row['jax_all_cores_steps_per_second']:>10.3g} {row['torch_faithful_steps_per_second']:>10.3g} "
              f"{row['torch_authors_steps_per_second']:>10.3g} {row['torch_lean_steps_per_second']:>10.3g} "
              f"{row['ratio_jax_all_cores_over_torch_faithful']:>12.1f} "
              f"{row['ratio_jax_all_cores_over_torch_authors']:>11.1f} {row['ratio_jax_all_cores_over_torch_lean']:>9.1f} "
              f"{row['ratio_jax_one_device_over_torch_authors']:>12.1f}", flush=True)

    target = next((r for r in rows if r["batch"] == 1024), None)
    result = {
        "benchmark": "peer_pytorch",
        "description": "trajectory-steps/s of lss_jax.rollout vs the mdn_propagator stepping loop rebuilt in PyTorch",
        "propagator": {"latent_dim": LATENT, "n_components": COMPONENTS, "hidden": list(HIDDEN), "activation": "relu",
                       "weights": "torch network copies the lss_jax.MDN weights"},
        "baseline": {
            "torch_authors": "Python loop, torch.distributions OneHotCategorical + Normal over all components, "
                             "one-hot weighted sum, clip(0, 1) (Ferg-Lab/mdn_propagator MixtureDensityNetwork.sample "
                             "in the gen_synthetic_traj loop, generalized to a batch; tqdm and scaler calls omitted)",
            "torch_lean": "same loop, torch.multinomial + gather + one randn per trajectory",
            "differences": "lss_jax uses reflecting boundaries and per-trajectory fold_in keys; the torch loop "
                           "clips to [0, 1] and uses the global torch generator",
        },
        "settings": {"repeats": args.repeats, "quick": args.quick, "torch_threads": torch.get_num_threads()},
        "results": rows,
        "issue_target": {
            "criterion": "JAX (all cores) / torch_authors (all cores) >= 5 at B = 1024 (the authors' batched sampler; "
                         "faithful rebuild and one JAX device beside it)",
            "ratio": target["ratio_jax_all_cores_over_torch_authors"] if target else None,
            "ratio_faithful": target["ratio_jax_all_cores_over_torch_faithful"] if target else None,
            "ratio_one_device": target["ratio_jax_one_device_over_torch_authors"] if target else None,
            "met": bool(target and target["ratio_jax_all_cores_over_torch_authors"] >= 5),
        },
        "machine": machine_facts(load_average_start=load_start, packages=["torch"]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_results(args.out or RESULTS / f"peer_pytorch-{jax.default_backend()}.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
