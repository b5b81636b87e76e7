"""SRV encoder training: lss_jax.encoder.fit_srv against deeptime's VAMPNet (PyTorch), seconds per epoch and score.

Data: the shipped alanine dipeptide ``train`` trajectory (25 000 frames, 2 ps), featurized as
``LSS.fit`` does (``featurize`` with the default spec: sin/cos of phi, psi and 45 heavy-atom
distances = 49 features, standardized over the whole trajectory). Lagged pairs at ``--lag`` (default 5
frames); the trailing 10% is held out for validation in both (``split_trajectories``), so both see
exactly the same training and validation pairs.

Same architecture, optimizer and schedule: 49 -> 100 -> 100 -> ``--n-outputs`` (default 2), each hidden
layer Linear -> BatchNorm -> tanh (torch ``momentum=0.1`` = flax ``momentum=0.9``, eps 1e-5), initial
weights copied from an :class:`lss_jax.encoder.SRVNet`; Adam, learning rate 1e-3, batch size 2000
(incomplete last batch dropped in both), ``--epochs`` epochs with a validation pass after each epoch,
and the best-validation epoch kept (lss_jax does this itself; for deeptime a validation callback keeps a
copy of the best lobe). Differences that remain (recorded in the JSON): deeptime's loss is the
non-reversible VAMP-2 and it runs the two halves of a pair through batch norm separately; lss_jax's
loss is the reversible (SRV) VAMP-2 over one batch-norm pass of both halves.

deeptime is timed twice: with the ``torch.utils.data.DataLoader`` over a ``TrajectoryDataset`` that its
documentation uses (``deeptime_dataloader``, the peer baseline), and with a loader that yields
pre-shuffled tensor batches (``deeptime_tensor_batches``, the framework without per-item collation).
Seconds per epoch: deeptime, the median of epochs 2..E; lss_jax, ``(T_E - T_1) / (E - 1)`` from
two runs of ``E`` and 1 epochs (each pays one compilation, which cancels).

Both trained networks are scored on the same validation pairs by one implementation: deeptime's
``vamp_score`` (VAMP-2, float64) and, as a second opinion, ``lss_jax.vamp_score`` (reversible VAMP-2).

    python benchmarks/perf/srv_vs_deeptime.py            # 50 epochs, seeds 0 1 2 -> results/srv_vs_deeptime-<backend>.json
    python benchmarks/perf/srv_vs_deeptime.py --quick    # 5 epochs, seed 0 (< 1 min)
    python benchmarks/perf/srv_vs_deeptime.py --seeds 0 --epochs 30 --out /tmp/srv.json
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lss_jax.benchmarking import benchmark_parser, load_average, machine_facts, write_results
from lss_jax.config import EncoderConfig
from lss_jax.data.featurize import featurize, standardizer_fit
from lss_jax.data.pairs import lagged_pairs, split_trajectories
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.encoder import SRVNet, fit_srv
from lss_jax.encoder.vamp import vamp_score

RESULTS = Path(__file__).resolve().parents[1] / "results"
HIDDEN = (100, 100)
VAL_FRACTION = 0.1


def _import_torch_deeptime():
    try:
        import torch
        from deeptime.decomposition.deep import VAMPNet  # noqa: F401
    except ImportError as err:
        sys.exit(f"benchmarks/perf/srv_vs_deeptime.py needs PyTorch and deeptime ({err}): "
                 "pip install torch==2.13.0 deeptime")
    return torch


def load_features(lag: int):
    traj = load_alanine_dipeptide("train")
    features = featurize(traj)
    scaler = standardizer_fit([features])
    fs = scaler.transform(features).astype(np.float32)
    train, val = split_trajectories([fs], VAL_FRACTION)
    return fs, lagged_pairs(train, lag), lagged_pairs(val, lag)


def build_torch_lobe(torch, template: SRVNet):
    """Linear -> BatchNorm1d -> tanh blocks with the sizes and initial weights of ``template``."""
    nn = torch.nn
    blocks = []
    for lin, bn in zip(template.layers, template.norms):
        t_lin = nn.Linear(*np.shape(lin.kernel[...]))
        t_bn = nn.BatchNorm1d(t_lin.out_features, eps=bn.epsilon, momentum=1.0 - bn.momentum)
        with torch.no_grad():
            t_lin.weight.copy_(torch.from_numpy(np.asarray(lin.kernel[...]).T.copy()))
            t_lin.bias.copy_(torch.from_numpy(np.asarray(lin.bias[...]).copy()))
            t_bn.weight.copy_(torch.from_numpy(np.asarray(bn.scale[...]).copy()))
            t_bn.bias.copy_(torch.from_numpy(np.asarray(bn.bias[...]).copy()))
        blocks += [t_lin, t_bn, nn.Tanh()]
    head = nn.Linear(*np.shape(template.head.kernel[...]))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(np.asarray(template.head.kernel[...]).T.copy()))
        head.bias.copy_(torch.from_numpy(np.asarray(template.head.bias[...]).copy()))
    return nn.Sequential(*blocks, head).float()


class TensorBatches:
    """Re-iterable loader of shuffled ``(x_0, x_tau)`` tensor batches (incomplete last batch dropped)."""

    def __init__(self, torch, pairs, batch_size: int, seed: int):
        self.torch, self.batch_size = torch, batch_size
        self.x0, self.xt = (torch.from_numpy(np.ascontiguousarray(a)) for a in pairs)
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        n = len(self.x0) // self.batch_size * self.batch_size
        perm = self.torch.randperm(len(self.x0), generator=self.generator)[:n].view(-1, self.batch_size)
        for idx in perm:
            yield self.x0[idx], self.xt[idx]


def score_outputs(torch, chi_0: np.ndarray, chi_t: np.ndarray) -> dict:
    """VAMP-2 of network outputs on validation pairs by deeptime (float64) and by lss_jax (reversible)."""
    from deeptime.decomposition.deep import vamp_score as dt_vamp_score

    a = torch.from_numpy(np.asarray(chi_0, np.float64))
    b = torch.from_numpy(np.asarray(chi_t, np.float64))
    return {
        "deeptime_vamp2": float(dt_vamp_score(a, b, method="VAMP2", epsilon=1e-6, mode="regularize")),
        "lss_jax_reversible_vamp2": float(vamp_score(jnp.asarray(chi_0), jnp.asarray(chi_t), r=2, reversible=True)),
    }


def run_lss_jax(fs, val_pairs, args, seed: int, torch) -> dict:
    encoder = EncoderConfig(hidden=HIDDEN, batch_norm=True, learning_rate=args.lr, batch_size=args.batch_size,
                            linear_floor=False)  # the network's training alone, as torch's
    kwargs = {"val_fraction": VAL_FRACTION, "progress": False}
    key = jax.random.key(seed)
    _, _, hist_1 = fit_srv(key, [fs], args.lag, args.n_outputs,
                           config=dataclasses.replace(encoder, epochs=1, patience=1), **kwargs)
    model, _, hist = fit_srv(key, [fs], args.lag, args.n_outputs,
                             config=dataclasses.replace(encoder, epochs=args.epochs, patience=args.epochs + 1), **kwargs)
    per_epoch = (hist.seconds - hist_1.seconds) / (args.epochs - 1)
    model.eval()
    graphdef, state = nnx.split(model)
    apply = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    chi = [np.asarray(apply(state, jnp.asarray(x))) for x in val_pairs]
    return {
        "seconds_per_epoch": per_epoch,
        "first_epoch_seconds_including_compile": hist_1.seconds,
        "train_loop_seconds": hist.seconds,
        "epochs": hist.epochs_run,
        "best_epoch": hist.best_epoch,
        "in_loop_val_score_best": -min(hist.val_loss),
        "in_loop_val_score_last": -hist.val_loss[-1],
        "in_loop_score": "reversible VAMP-2 (lss_jax)",
        "val_scores": score_outputs(torch, *chi),
    }


def run_deeptime(train_pairs, val_pairs, args, seed: int, torch, loader_kind: str) -> dict:
    from deeptime.decomposition.deep import VAMPNet
    from deeptime.util.data import TrajectoryDataset

    template = SRVNet(train_pairs[0].shape[1], args.n_outputs, HIDDEN, rngs=nnx.Rngs(seed))
    lobe = build_torch_lobe(torch, template)
    torch.manual_seed(seed)
    if loader_kind == "dataloader":
        # pairs of one contiguous trajectory: TrajectoryDataset(lag, train part) gives exactly train_pairs
        train_traj = np.concatenate([train_pairs[0][: args.lag], train_pairs[1]])
        dataset = TrajectoryDataset(args.lag, train_traj)
        if len(dataset) != len(train_pairs[0]):
            raise RuntimeError(f"TrajectoryDataset has {len(dataset)} pairs, expected {len(train_pairs[0])}")
        loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)
    else:
        loader = TensorBatches(torch, train_pairs, args.batch_size, seed)
    val_t = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in val_pairs)
    val_loader = [val_t]  # one batch with all validation pairs, like lss_jax's single evaluation chunk
    vampnet = VAMPNet(lobe=lobe, learning_rate=args.lr, epsilon=1e-6, score_method="VAMP2",
                      score_mode="regularize", device="cpu", dtype=np.float32)
    best = {"score": -np.inf, "epoch": -1, "state": None}
    epoch_times = []
    for epoch in range(args.epochs):
        def keep_best(_step, score, epoch=epoch):
            if float(score) > best["score"]:
                best.update(score=float(score), epoch=epoch, state=copy.deepcopy(lobe.state_dict()))

        start = time.perf_counter()
        vampnet.fit(loader, n_epochs=1, validation_loader=val_loader, validation_score_callback=keep_best)
        epoch_times.append(time.perf_counter() - start)
    last_score = vampnet.validation_scores[-1, 1]
    lobe.load_state_dict(best["state"])
    lobe.eval()
    with torch.no_grad():
        chi = [lobe(x).numpy() for x in val_t]
    return {
        "seconds_per_epoch": float(np.median(epoch_times[1:] if len(epoch_times) > 1 else epoch_times)),
        "first_epoch_seconds": epoch_times[0],
        "train_loop_seconds": float(np.sum(epoch_times)),
        "epochs": args.epochs,
        "best_epoch": best["epoch"],
        "in_loop_val_score_best": best["score"],
        "in_loop_val_score_last": float(last_score),
        "in_loop_score": "VAMP-2 (deeptime, non-reversible)",
        "val_scores": score_outputs(torch, *chi),
    }


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="5 epochs, one seed",
                              out="JSON path (default benchmarks/results/srv_vs_deeptime-<backend>.json)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lag", type=int, default=5)
    parser.add_argument("--n-outputs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="'equal final score': lss_jax >= deeptime - tolerance (VAMP-2 units)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds = 5, args.seeds[:1]
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (seconds per epoch are measured between epochs)")
    torch = _import_torch_deeptime()
    torch.set_num_threads(os.cpu_count())
    load_average_start = load_average()
    fs, train_pairs, val_pairs = load_features(args.lag)
    print(f"{fs.shape[1]} features, {len(train_pairs[0])} training / {len(val_pairs[0])} validation pairs at lag "
          f"{args.lag}", file=sys.stderr)

    runs = []
    names = ("lss_jax", "deeptime_dataloader", "deeptime_tensor_batches")
    print(f"{'seed':>4} {'implementation':<24} {'s/epoch':>8} {'best ep':>7} {'VAMP-2 (dt)':>11} {'rev VAMP-2':>10}")
    for seed in args.seeds:
        run = {"seed": seed,
               "lss_jax": run_lss_jax(fs, val_pairs, args, seed, torch),
               "deeptime_dataloader": run_deeptime(train_pairs, val_pairs, args, seed, torch, "dataloader"),
               "deeptime_tensor_batches": run_deeptime(train_pairs, val_pairs, args, seed, torch, "tensor")}
        for name in names:
            r = run[name]
            print(f"{seed:>4} {name:<24} {r['seconds_per_epoch']:>8.4f} {r['best_epoch']:>7} "
                  f"{r['val_scores']['deeptime_vamp2']:>11.4f} {r['val_scores']['lss_jax_reversible_vamp2']:>10.4f}",
                  flush=True)
        runs.append(run)

    def mean(name, *path):
        vals = []
        for run in runs:
            v = run[name]
            for p in path:
                v = v[p]
            vals.append(v)
        return float(np.mean(vals))

    summary = {}
    for name in names:
        summary[name] = {"seconds_per_epoch": mean(name, "seconds_per_epoch"),
                         "val_deeptime_vamp2": mean(name, "val_scores", "deeptime_vamp2"),
                         "val_lss_jax_reversible_vamp2": mean(name, "val_scores", "lss_jax_reversible_vamp2")}
    for name in names[1:]:
        summary[f"epoch_speedup_vs_{name}"] = summary[name]["seconds_per_epoch"] / summary["lss_jax"]["seconds_per_epoch"]
        summary[f"score_difference_vs_{name}"] = (summary["lss_jax"]["val_deeptime_vamp2"]
                                                  - summary[name]["val_deeptime_vamp2"])
    speedup = summary["epoch_speedup_vs_deeptime_dataloader"]
    equal = summary["score_difference_vs_deeptime_dataloader"] >= -args.tolerance
    print(f"\nmean over seeds {args.seeds}: lss_jax {summary['lss_jax']['seconds_per_epoch']:.4f} s/epoch; "
          f"speedup vs deeptime (DataLoader) {speedup:.1f}x, vs deeptime (tensor batches) "
          f"{summary['epoch_speedup_vs_deeptime_tensor_batches']:.1f}x; VAMP-2 difference (lss_jax - deeptime) "
          f"{summary['score_difference_vs_deeptime_dataloader']:+.4f}")

    result = {
        "benchmark": "srv_vs_deeptime",
        "data": {"trajectory": "lss_jax.datasets alanine dipeptide 'train' (25 000 frames, 2 ps)",
                 "features": int(fs.shape[1]), "feature_spec": "lss_jax default FeatureSpec, standardized",
                 "lag_frames": args.lag, "train_pairs": len(train_pairs[0]),
                 "val_pairs": len(val_pairs[0]), "val_fraction": VAL_FRACTION},
        "architecture": {"hidden": list(HIDDEN), "activation": "tanh", "batch_norm": True,
                         "n_outputs": args.n_outputs, "init": "torch lobe copies the initial SRVNet weights"},
        "training": {"optimizer": "Adam", "learning_rate": args.lr, "batch_size": args.batch_size,
                     "epochs": args.epochs, "drop_last": True, "model_kept": "best validation epoch"},
        "differences": [
            "loss: lss_jax reversible (SRV) VAMP-2; deeptime non-reversible VAMP-2 (score_mode='regularize', eps 1e-6)",
            ("batch norm: lss_jax normalizes x_t and x_t+tau in one pass (shared statistics); deeptime calls the "
             "lobe on each half separately"),
            "batch norm running variance: torch updates it with the unbiased batch variance, flax with the biased one",
            "in-loop validation score (used to pick the best epoch) is each library's own loss",
            "lss_jax seconds per epoch from (T_E - T_1)/(E - 1); deeptime from the median per-epoch wall time",
        ],
        "runs": runs,
        "summary": summary,
        "issue_target": {
            "criterion": f"lss_jax epoch >= 2x faster than deeptime (DataLoader) with final validation VAMP-2 "
                         f"(deeptime scorer) >= deeptime's - {args.tolerance}",
            "speedup": speedup,
            "equal_score": bool(equal),
            "met": bool(speedup >= 2 and equal),
        },
        "settings": {"quick": args.quick, "seeds": args.seeds},
        "machine": machine_facts(load_average_start=load_average_start, packages=["torch", "deeptime"]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_results(args.out or RESULTS / f"srv_vs_deeptime-{jax.default_backend()}.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
