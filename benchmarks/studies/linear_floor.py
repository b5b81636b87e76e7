"""The encoder against linear TICA on the shipped alanine dipeptide made sparse (docs/encoder.md).

For every frame stride and length fraction of the shipped 50 ns training run, the default features are standardized
and three encoders are compared at the same lag and split: TICA, the plain SRV and the SRV trained from TICA (the
linear floor's network), each scored by the reversible VAMP-2 of its outputs on all training and all validation
pairs (``lss_jax.encoder.linear_floor``), with the implied timescales (TICA's of the training part) and whether the
linear floor's rule calls each below TICA (``lss_jax.encoder.below_floor``: a slow process TICA finds out of sample
lost).

    python benchmarks/studies/linear_floor.py                               # ~2 min on 2 CPU cores -> results/linear_floor-<backend>.json
    python benchmarks/studies/linear_floor.py --strides 5 --fractions 0.25 --seeds 0
    python benchmarks/studies/linear_floor.py --lss       # and the full LSS's latent t1 against MD's (~6 min)
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from lss_jax import LSS
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.config import EncoderConfig, LSSConfig
from lss_jax.data.featurize import featurize
from lss_jax.data.pairs import split_trajectories
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.encoder import below_floor, fit_srv, implied_timescales, linear_floor, reversible_decomposition
from lss_jax.systems.alanine_dipeptide import SHIPPED_FRAME_PS

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="folder of the JSON (default benchmarks/results)")
    parser.add_argument("--strides", nargs="+", type=int, default=[5, 1], help="keep every n-th frame (2 ps each)")
    parser.add_argument("--fractions", nargs="+", type=float, default=[1.0, 0.5, 0.25], help="leading fraction kept")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--outputs", type=int, default=4, help="SRV outputs (and TICA components) scored")
    parser.add_argument("--lss", action="store_true",
                        help="also fit the LSS at its defaults (linear floor on; the knn decoder, which the latent t1 does "
                             "not read) on each data set and compare its latent t1 (100 x 1000 steps) with MD's: the "
                             "shipped independent run at the same stride, encoded by the same model")
    args = parser.parse_args(argv)

    results = {"benchmark": "linear_floor", "backend": jax.default_backend(), "machine": machine_facts(),
               "jax": jax.__version__, "runs": []}
    path = (args.out or RESULTS) / f"linear_floor-{jax.default_backend()}.json"
    independent = {stride: load_alanine_dipeptide("independent", stride=stride) for stride in args.strides}
    for stride in args.strides:
        full = load_alanine_dipeptide("train", stride=stride)
        for fraction in args.fractions if stride > 1 else [1.0]:
            traj = full[: int(fraction * full.n_frames)]
            f = np.asarray(featurize(traj, LSSConfig(lag=1).feature_spec), np.float64)
            features = [((f - f.mean(0)) / np.maximum(f.std(0), 1e-12)).astype(np.float32)]
            lag, frame_ps = 1, SHIPPED_FRAME_PS * stride  # one frame: 10 ps at stride 5, 2 ps at stride 1
            train, _ = split_trajectories(features, 0.1)
            tica_t = implied_timescales(reversible_decomposition(train, lag).eigenvalues[: args.outputs], lag * frame_ps)
            for seed in args.seeds:
                run = {"stride": stride, "frame_ps": frame_ps, "fraction": fraction, "n_frames": traj.n_frames,
                       "lag_ps": lag * frame_ps, "seed": seed, "tica_timescales_ps": tica_t.tolist()}
                for name, tica_path in (("plain", False), ("from_tica", True)):
                    start = time.perf_counter()
                    net, projection, history = fit_srv(jax.random.key(seed), features, lag, args.outputs,
                                                       tica_path=tica_path, progress=False,
                                                       config=EncoderConfig(linear_floor=False))
                    scores = linear_floor(net, features, lag)
                    run[name] = {**{k: v for k, v in scores.items() if k != "tica_eigenvalues"},
                                 "below": below_floor(scores),
                                 "timescales_ps": implied_timescales(projection.eigenvalues, lag * frame_ps).tolist(),
                                 "best_epoch": history.best_epoch, "seconds": time.perf_counter() - start}
                if args.lss:
                    run["lss"] = _lss_t1(traj, independent[stride], lag, frame_ps, seed)
                results["runs"].append(run)
                write_results(path, results)
                p, t = run["plain"], run["from_tica"]
                print(f"{frame_ps:4.0f} ps frames, {fraction:4.0%}, seed {seed}: VAMP-2 val/train TICA "
                      f"{p['tica_val_vamp2']:.3f}/{p['tica_train_vamp2']:.3f} | plain {p['srv_val_vamp2']:.3f}/"
                      f"{p['srv_train_vamp2']:.3f} | from TICA {t['srv_val_vamp2']:.3f}/{t['srv_train_vamp2']:.3f} | t1 "
                      f"TICA {tica_t[0]:.1f}, plain {p['timescales_ps'][0]:.1f}, from TICA {t['timescales_ps'][0]:.1f} ps"
                      f" | below TICA (below_floor): plain {p['below']}, from TICA {t['below']}"
                      + (f" | LSS t1 {run['lss']['t1_lss_ps']:.1f} vs MD {run['lss']['t1_md_ps']:.1f} ps (m = "
                         f"{run['lss']['latent_dim']}, encoder from TICA: {run['lss']['tica_path']})" if args.lss else ""),
                      flush=True)
    return 0


def _lss_t1(traj, independent, lag: int, frame_ps: float, seed: int) -> dict:
    """The LSS at its defaults on ``traj``: its latent t1 against the independent run's, encoded by the same model."""
    model = LSS(lag=lag, decoder={"kind": "knn"}, seed=seed).fit(traj, progress=False).fetch_model()
    t_md = implied_timescales(reversible_decomposition([model.encode(independent)], lag).eigenvalues[:1], lag * frame_ps)
    latent = model.propagate(jax.random.key(seed + 1), model.from_unit(model.start_points[:100]), 1000, progress=False)
    t_lss = implied_timescales(reversible_decomposition(list(latent), 1).eigenvalues[:1], lag * frame_ps)
    floor = model.info["encoder"]["linear_floor"]
    return {"t1_lss_ps": float(t_lss[0]), "t1_md_ps": float(t_md[0]), "latent_dim": model.latent_dim,
            "tica_path": floor["tica_path"], "below": floor["below"]}


if __name__ == "__main__":
    raise SystemExit(main())
