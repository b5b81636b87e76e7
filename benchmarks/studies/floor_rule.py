"""The linear floor's rule, measured on every system the floor was studied on (docs/encoder.md): which plain SRVs
lose a slow process TICA finds (:func:`lss_jax.encoder.below_floor`, the rule since 2026-12-06) and which the rule
before it (VAMP-2 on the training or validation pairs below TICA's by more than two bootstrap SE and 0.1 %) called
below.

* rare-state system (:func:`lss_jax.datasets.rare_state_features`, seeds 0-5, lag 5 frames, 3 outputs), with the
  plain SRV's and TICA's slowest timescale;
* the shipped alanine dipeptide, every sweep setting (lag 2, 4, 10, 20 ps; m = 1, 2, 3) in LSS seeds 0, 1, 2
  (``LSS(lag, encoder={"latent_dim": m, "linear_floor": False}, decoder={"kind": "knn"})``: the plain SRV);
* Trp-cage, the shipped protocol's encoder (``trp_cage.lss_config(seed=s)``), seeds 0, 1, 2;
* the villin headpiece, the configuration ``lss-jax demo --system villin`` trains (protocol ``ca``, lag 5 frames,
  chosen from the data), seeds 0, 1, 2.

Each row: :func:`lss_jax.encoder.linear_floor`'s record (VAMP-2 on the training and validation pairs, TICA in
sample on the first; the eigenvalues with TICA out of sample: cross-fitted on the training part, and on the
validation pairs), the implied timescales from those eigenvalues, and both rules' verdicts.

    python benchmarks/studies/floor_rule.py    # ~10 min on 2 CPU cores -> results/floor_rule-<backend>.json
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from lss_jax import LSS
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.config import EncoderConfig
from lss_jax.datasets import load_alanine_dipeptide, rare_state_features
from lss_jax.encoder import below_floor, fit_srv, implied_timescales, linear_floor
from lss_jax.protocols import protocol_config
from lss_jax.systems import trp_cage as tc
from lss_jax.systems.report import folding_systems

RESULTS = Path(__file__).resolve().parents[1] / "results"
PLAIN = {"linear_floor": False}
VILLIN_LAG = 5  # frames (100 ps): what `lss-jax train --lag auto` chooses on the shipped run


def vamp2_rule(scores: dict, tolerance: float = 1e-3, n_se: float = 2.0) -> bool:
    """The rule before 2026-12-06: VAMP-2 below TICA's on either split by more than n_se SE and tolerance."""
    return any(scores[f"srv_{p}_vamp2"] < scores[f"tica_{p}_vamp2"]
               - max(tolerance * scores[f"tica_{p}_vamp2"], n_se * scores[f"diff_se_{p}"]) for p in ("train", "val"))


def row(scores: dict, lag: float, **extra) -> dict:
    scores = {k: (np.asarray(v).tolist() if k == "tica_eigenvalues" else v) for k, v in scores.items()}
    t = lambda e: float(implied_timescales(np.asarray([e]), lag)[0]) if 0 < e < 1 else 0.0  # noqa: E731
    return {**extra, **scores, "below": below_floor(scores), "below_vamp2_rule": vamp2_rule(scores),
            **{f"{who}_{p}_timescales": [t(e) for e in scores[f"{who}_{p}_eigenvalues"]]
               for who in ("srv", "tica") for p in ("train", "val")}}


def show(name: str, r: dict) -> None:
    ts = {p: ", ".join(f"{a:.3g} vs {b:.3g}" for a, b in zip(r[f"srv_{p}_timescales"], r[f"tica_{p}_timescales"]))
          for p in ("train", "val")}
    print(f"{name}: VAMP-2 train {r['srv_train_vamp2']:.4f} vs {r['tica_train_vamp2']:.4f} (SE {r['diff_se_train']:.4f}),"
          f" val {r['srv_val_vamp2']:.4f} vs {r['tica_val_vamp2']:.4f}; timescales SRV vs TICA, training part "
          f"(TICA cross-fitted) {ts['train']}; validation {ts['val']}; below: rule {r['below']}, VAMP-2 rule "
          f"{r['below_vamp2_rule']}", flush=True)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/floor_rule-<backend>.json)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="LSS seeds (alanine dipeptide, Trp-cage)")
    args = parser.parse_args(argv)
    path = args.out or RESULTS / f"floor_rule-{jax.default_backend()}.json"
    results = {"benchmark": "floor_rule", "backend": jax.default_backend(), "machine": machine_facts(),
               "jax": jax.__version__, "rare_state": [], "ala2": [], "trp_cage": []}
    for seed in range(6):
        x, _ = rare_state_features(seed)
        net, projection, _ = fit_srv(jax.random.key(seed), [x], 5, 3, config=EncoderConfig(**PLAIN), progress=False)
        r = row(linear_floor(net, [x], 5), 5.0, seed=seed,
                srv_t1_frames=float(implied_timescales(projection.eigenvalues[:1], 5)[0]))
        results["rare_state"].append(r)
        show(f"rare state, seed {seed}", r)
    write_results(path, results)
    train = load_alanine_dipeptide("train")
    for seed in args.seeds:
        for lag in (1, 2, 5, 10):
            for m in (1, 2, 3):
                model = LSS(lag=lag, encoder={"latent_dim": m, **PLAIN}, decoder={"kind": "knn"},
                            propagator={"epochs": 1}, seed=seed).fit(train, progress=False).fetch_model()
                floor = model.info["encoder"]["linear_floor"]
                r = row(floor, 2.0 * lag, seed=seed, lag_ps=2.0 * lag, latent_dim=m)
                results["ala2"].append(r)
                show(f"alanine dipeptide {2 * lag} ps, m = {m}, seed {seed}", r)
        write_results(path, results)
    trp = tc.load_trp_cage("train")
    for seed in args.seeds:
        config = tc.lss_config(seed=seed, encoder=PLAIN, propagator={"epochs": 1}, decoder={"kind": "knn"})
        model = LSS(config=config).fit(trp, progress=False).fetch_model()
        r = row(model.info["encoder"]["linear_floor"], float(config.lag * trp.timestep), seed=seed,
                lag_ps=float(config.lag * trp.timestep))
        results["trp_cage"].append(r)
        show(f"Trp-cage seed {seed}", r)
        write_results(path, results)
    villin = folding_systems()["villin"].load("train")
    results["villin"] = []
    for seed in args.seeds:
        config = protocol_config("ca", VILLIN_LAG, {"seed": seed, "encoder": PLAIN, "propagator": {"epochs": 1},
                                                    "decoder": {"kind": "knn"}})
        model = LSS(config=config).fit(villin, progress=False).fetch_model()
        lag_ps = float(config.lag * villin.timestep)
        r = row(model.info["encoder"]["linear_floor"], lag_ps, seed=seed, lag_ps=lag_ps)
        results["villin"].append(r)
        show(f"villin seed {seed}", r)
        write_results(path, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
