"""Mechanisms for the encoder's linear floor, measured (docs/encoder.md): restarts and longer training of the plain
SRV against the TICA path, on the rare-state system with a known answer and on the shipped alanine dipeptide.

The issue named several ways to keep an SRV from ending below TICA on sparse rare-event data; the TICA path (a
residual linear path started at TICA, ``encoder.linear_floor``) is the one shipped. This script measures two of the
others on the same data:

* rare-state system (:func:`lss_jax.datasets.rare_state_features`, seeds 0-5, lag 5 frames, 3 outputs): the plain
  SRV from its key and from ``restarts`` other keys (``fold_in(key, r)``), the plain SRV with early stopping's
  patience at 50 epochs (50 and 200 epochs), without batch normalization, with minibatches of 500, and the TICA
  path; each run's slowest implied timescale t1 (frames), whether :func:`lss_jax.encoder.below_floor` calls it
  below TICA, and the epoch early stopping kept;
* alanine dipeptide (``--ala2``): the three sweep settings where the check calls the plain SRV below TICA (lag 10 ps
  with m = 2 and 3, lag 20 ps with m = 1; ``LSS(lag, encoder={"latent_dim": m}, decoder={"kind": "knn"})`` on the
  shipped 50 ns), with LSS seeds 0, 1, 2 (other encoder keys: restarts) and seed 0 with patience 50 for 200 epochs.

    python benchmarks/studies/floor_mechanisms.py --ala2   # ~6 min on 2 CPU cores -> results/floor_mechanisms-<backend>.json
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np

from lss_jax import LSS
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.config import EncoderConfig
from lss_jax.datasets import load_alanine_dipeptide, rare_state_features, rare_state_timescale
from lss_jax.encoder import below_floor, fit_srv, implied_timescales, linear_floor, reversible_decomposition

RESULTS = Path(__file__).resolve().parents[1] / "results"
LAG, OUTPUTS = 5, 3
PLAIN = EncoderConfig(linear_floor=False)  # the SRV as trained, whatever the check says
VARIANTS = {  # name: (EncoderConfig, tica_path)
    "plain": (PLAIN, False),
    "patience50": (replace(PLAIN, patience=50), False),
    "patience50_epochs200": (replace(PLAIN, patience=50, epochs=200), False),
    "no_batch_norm": (replace(PLAIN, batch_norm=False), False),
    "batch500": (replace(PLAIN, batch_size=500), False),
    "tica_path": (PLAIN, True),
}


def _run(key, x, config, tica_path):
    net, projection, history = fit_srv(key, [x], LAG, OUTPUTS, config=config, tica_path=tica_path, progress=False)
    scores = linear_floor(net, [x], LAG)
    return {"t1_frames": float(implied_timescales(projection.eigenvalues[:1], LAG)[0]), "below": below_floor(scores),
            "best_epoch": history.best_epoch, **{k: v for k, v in scores.items() if k != "tica_eigenvalues"}}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/floor_mechanisms-<backend>.json)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(6)))
    parser.add_argument("--restarts", type=int, default=4, help="other keys of the plain SRV per seed")
    parser.add_argument("--ala2", action="store_true", help="also the three alanine dipeptide settings")
    args = parser.parse_args(argv)

    path = args.out or RESULTS / f"floor_mechanisms-{jax.default_backend()}.json"
    results = {"benchmark": "floor_mechanisms", "backend": jax.default_backend(), "machine": machine_facts(),
               "jax": jax.__version__, "exact_t1_frames": rare_state_timescale(), "rare_state": [], "ala2": []}
    for seed in args.seeds:
        x, s = rare_state_features(seed)
        row = {"seed": seed, "entries": int(np.sum((s[1:] == 1) & (s[:-1] == 0))),
               "tica_t1_frames": float(implied_timescales(reversible_decomposition([x], LAG).eigenvalues[:1], LAG)[0])}
        for name, (config, tica_path) in VARIANTS.items():
            row[name] = _run(jax.random.key(seed), x, config, tica_path)
        row["restarts"] = [_run(jax.random.fold_in(jax.random.key(seed), r), x, PLAIN, False)
                           for r in range(1, args.restarts + 1)]
        results["rare_state"].append(row)
        write_results(path, results)
        cell = lambda r: f"{r['t1_frames']:.1f}{'*' if r['below'] else ''}"  # noqa: E731
        print(f"seed {seed}: TICA t1 {row['tica_t1_frames']:.1f} | "
              + " ".join(f"{name} {cell(row[name])}" for name in VARIANTS)
              + " | restarts " + " ".join(cell(r) for r in row["restarts"]) + "   (* below TICA)", flush=True)
    if args.ala2:
        train = load_alanine_dipeptide("train")
        for lag, m in ((5, 2), (5, 3), (10, 1)):
            for seed, extra in ((0, {}), (1, {}), (2, {}), (0, {"patience": 50, "epochs": 200})):
                start = time.perf_counter()
                model = LSS(lag=lag, encoder={"latent_dim": m, "linear_floor": False, **extra}, decoder={"kind": "knn"},
                            propagator={"epochs": 1}, seed=seed).fit(train, progress=False).fetch_model()
                floor = model.info["encoder"]["linear_floor"]
                results["ala2"].append({"lag_ps": 2.0 * lag, "latent_dim": m, "seed": seed, "encoder": extra,
                                        "seconds": time.perf_counter() - start, **floor})
                write_results(path, results)
                print(f"alanine dipeptide {2 * lag} ps, m = {m}, seed {seed} {extra or ''}: VAMP-2 train "
                      f"{floor['srv_train_vamp2']:.4f} vs TICA {floor['tica_train_vamp2']:.4f}, val "
                      f"{floor['srv_val_vamp2']:.4f} vs {floor['tica_val_vamp2']:.4f}, below {floor['below']}",
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
