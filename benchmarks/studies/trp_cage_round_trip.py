"""The Trp-cage decoders alone: decode(encode(independent MD)), with the folding and validity numbers of the issue on
the generative protein decoder, before any rollout.

One encoder (``trp_cage.lss_config(seed=0, decoder={"kind": "knn"})``, retrieval decoder, fitted on the shipped training run) gives the
latent points of the training and the independent run. Each decoder named on the command line is trained alone on
the training run's (ψ, Cα) pairs and decodes every frame of the independent run once (first draws: no redraws),
and is scored against that run:

* validity: frames with a Cα pair ``|i - j| >= 4`` closer than 0.3 nm, frames with a virtual bond more than 10 %
  off its MD mean, the spread (sd) of the virtual-bond angles;
* folding: folded fraction (hysteresis on Q, frames 5 ps apart), mean Q, the shares of frames with Q < 0.3 and
  Q > 0.7, the radius of gyration;
* the conditional law at 300 held-out latent points, 50 draws each: the sd of Q (MD: over the 50 training frames
  nearest in latent space) and the mean Q's bias;
* novelty: the median Cα-RMSD of 400 decoded frames to their nearest training frame, beside the same for
  independent MD frames.

    python benchmarks/studies/trp_cage_round_trip.py                              # chain with and without states
    python benchmarks/studies/trp_cage_round_trip.py --decoders chain knn --epochs 5   # quick look
    python benchmarks/studies/trp_cage_round_trip.py --decoders chain-gaussian-prior --temperatures 0.8 1.0
    python benchmarks/studies/trp_cage_round_trip.py --decoders chain --window 2 --tag _window2
    python benchmarks/studies/trp_cage_round_trip.py --decoders chain chain-wide --epochs 50 200   # longer, wider

``--window W`` conditions each decoder on a window of the latent path, (ψ_{t-W·lag}, ..., ψ_{t+W·lag}) (clipped at
the ends of a run), instead of ψ_t alone: the lead of ``trp_cage_transitions_floor.py`` (retrieval by such a window
halves the transitions that decoding frame by frame adds), tried on a generative decoder. Transitions are counted
on frames one lag (50 ps) apart, as the protocol does, beside the folded fraction on every frame.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import jax
import mdtraj as md
import numpy as np

from lss_jax import fit_lss
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.decoder import DecoderConfig, decode_rows, fit_decoder
from lss_jax.systems import trp_cage as tc

RESULTS = Path(__file__).resolve().parents[1] / "results"
LAG = tc.lss_config().lag  # the protocol's lag (frames): windows and transitions one lag apart
DECODERS = {  # name -> DecoderConfig fields (first draws: redraws = 0)
    "chain": {"kind": "chain"},
    "chain-no-states": {"kind": "chain", "states": 0},
    "chain-self-conditioned": {"kind": "chain", "self_condition": True},
    "chain-64-states": {"kind": "chain", "states": 64},
    "chain-gaussian-prior": {"kind": "chain", "prior": "gaussian"},
    "chain-chain-prior": {"kind": "chain", "prior": "chain"},
    "chain-wide": {"kind": "chain", "hidden": (128, 128, 128, 128)},  # 4 blocks of 128 features (an accelerator's)
    "flow": {"kind": "flow"},
    "knn": {"kind": "knn"},
}


def latent_window(u: np.ndarray, w: int, lag: int) -> np.ndarray:
    """``[n, (2w + 1) m]``: each frame's latent point with those ``1..w`` lags before and after it (clipped)."""
    at = np.arange(len(u))
    return np.concatenate([u[np.clip(at + o * lag, 0, len(u) - 1)] for o in range(-w, w + 1)], axis=1)


def bond_angles(xyz: np.ndarray) -> np.ndarray:
    """Virtual-bond angles ``[n, n_beads - 2]`` (degrees)."""
    u, v = xyz[:, :-2] - xyz[:, 1:-1], xyz[:, 2:] - xyz[:, 1:-1]
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def structure_numbers(xyz: np.ndarray, bond_mean: np.ndarray, frame_ps: float) -> dict:
    i, j = np.triu_indices(xyz.shape[1], k=4)
    closest = np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1).min(1)
    bonds = np.linalg.norm(xyz[:, 1:] - xyz[:, :-1], axis=-1)
    q = tc.fraction_native_contacts(xyz)
    folding = tc.folding_metrics([xyz], xyz[None], md_frame_time=frame_ps, lss_frame_time=frame_ps)
    per_lag = tc.folding_metrics([xyz[::LAG]], xyz[None, ::LAG], md_frame_time=LAG * frame_ps,
                                 lss_frame_time=LAG * frame_ps)
    rg = np.sqrt(((xyz - xyz.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    return {"pair_closer_than_0.3nm": float(np.mean(closest < 0.3)),
            "bond_off_10pct": float(np.mean(np.any(np.abs(bonds / bond_mean - 1) > 0.1, axis=1))),
            "bond_angle_sd_deg": float(bond_angles(xyz).std(0).mean()),
            "folded_fraction": folding["folded_fraction"]["lss"], "mean_q": float(q.mean()),
            "transitions_per_us_one_lag": per_lag["transitions_per_us"]["lss"],
            "q_below_0.3": float(np.mean(q < 0.3)), "q_above_0.7": float(np.mean(q > 0.7)),
            "radius_of_gyration_nm": float(rg.mean())}


def novelty(xyz: np.ndarray, train_xyz: np.ndarray, topology, rows: np.ndarray) -> float:
    """Median Cα-RMSD (nm) of ``xyz[rows]`` to the nearest training frame."""
    train = md.Trajectory(train_xyz, topology)
    frames = md.Trajectory(xyz[rows], topology)
    return float(np.median([md.rmsd(train, frames, k).min() for k in range(len(rows))]))


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/trp_cage_round_trip-<backend>.json)")
    parser.add_argument("--decoders", nargs="+", default=["chain", "chain-no-states"], choices=sorted(DECODERS))
    parser.add_argument("--epochs", type=int, nargs="+", default=[None],
                        help="decoder epochs (default: each kind's own); several: one training each (rows NAME/eE)")
    parser.add_argument("--seed", type=int, default=0, help="the encoder's and the decoders' seed")
    parser.add_argument("--window", type=int, default=0,
                        help="condition the decoders on the latent path W lags either side of the frame (default 0)")
    parser.add_argument("--tag", default="", help="suffix of the default JSON name")
    parser.add_argument("--temperatures", type=float, nargs="+", default=None,
                        help="chain decoders: score each trained decoder sampled at each of these prior temperatures "
                             "(rows NAME@T; default: the configuration's)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train, independent = tc.load_trp_cage("train"), tc.load_trp_cage("independent")
    model = fit_lss(jax.random.key(args.seed), [train], tc.lss_config(seed=args.seed, decoder={"kind": "knn"}), progress=False)
    u_train, u_ind = (model.to_unit(model.encode([t])[0]) for t in (train, independent))
    c_train, c_ind = (latent_window(u, args.window, LAG) for u in (u_train, u_ind))
    x_train, x_ind = train.xyz, independent.xyz
    bond_mean = np.linalg.norm(x_train[:, 1:] - x_train[:, :-1], axis=-1).mean(0)
    frame_ps = float(independent.timestep)
    rng = np.random.default_rng(args.seed)
    points = rng.choice(len(u_ind), 300, replace=False)
    novelty_rows = rng.choice(len(u_ind), 400, replace=False)
    q_train = tc.fraction_native_contacts(x_train)
    nearest = np.argsort(((u_ind[points][:, None] - u_train[None]) ** 2).sum(-1), axis=1)[:, :50]
    md_row = structure_numbers(x_ind, bond_mean, frame_ps)
    md_row.update(q_spread=float(q_train[nearest].std(1).mean()),
                  novelty_nm=novelty(x_ind, x_train, train.topology, novelty_rows))
    rows = {"md_independent": md_row}

    def score(decoder, history, config, trained):
        n = len(u_ind)
        t0 = time.perf_counter()
        xyz, _ = decode_rows(jax.random.key(11), decoder, c_ind, np.zeros(n, np.int32), np.arange(n, dtype=np.int32),
                             progress=False)
        decode_s = time.perf_counter() - t0
        row = structure_numbers(xyz, bond_mean, frame_ps)
        draws, _ = decode_rows(jax.random.key(12), decoder, np.repeat(c_ind[points], 50, axis=0),
                               np.tile(np.arange(50, dtype=np.int32), len(points)),
                               np.repeat(np.arange(len(points), dtype=np.int32), 50), progress=False)
        q_draws = tc.fraction_native_contacts(draws).reshape(len(points), 50)
        row.update(q_spread=float(q_draws.std(1).mean()),
                   q_bias_given_psi=float((q_draws.mean(1) - q_train[nearest].mean(1)).mean()),
                   novelty_nm=novelty(xyz, x_train, train.topology, novelty_rows), config=config,
                   epochs_run=history.epochs_run, training_s=trained, frames_per_s=n / decode_s)
        return row

    def save():  # after every row, so a run stopped by a time limit keeps the rows it finished
        write_results(args.out or RESULTS / f"trp_cage_round_trip-{jax.default_backend()}{args.tag}.json", {
            "benchmark": "trp_cage_round_trip",
            "description": "Trp-cage decoders alone: decode(encode(independent MD)), first draws, against MD",
            "seed": args.seed, "window": args.window, "rows": rows, "seconds": time.perf_counter() - start,
            "machine": machine_facts(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    for name, epochs in itertools.product(args.decoders, args.epochs):
        fields = {**DECODERS[name], "redraws": 0, **({"epochs": epochs} if epochs else {})}
        t0 = time.perf_counter()
        decoder, history = fit_decoder(jax.random.key(args.seed + 5), x_train, c_train, topology=train.topology,
                                       config=DecoderConfig(**fields), progress=False)
        trained = time.perf_counter() - t0
        field = getattr(decoder.network, "field", decoder.network)  # a StateFlow's field, or the network
        base = name if len(args.epochs) == 1 else f"{name}/e{epochs}"
        for temperature in args.temperatures if hasattr(field, "temperature") and args.temperatures else [None]:
            label, config = base, fields
            if temperature is not None:  # the same trained decoder, sampled at another prior temperature
                field.temperature, label, config = temperature, f"{base}@{temperature:g}", {**fields, "temperature": temperature}
            rows[label] = score(decoder, history, config, trained)
            print(f"{label}: " + ", ".join(f"{k} {v:.4g}" for k, v in rows[label].items() if isinstance(v, float)),
                  flush=True)
            save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
