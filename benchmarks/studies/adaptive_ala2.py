"""Adaptive sampling vs plain MD of equal cost on alanine dipeptide, starting from one region only.

Start: 3 ns (1500 frames of 2 ps) of the shipped training trajectory that never visits phi > 0 (the
alpha_L basin, 0.2 % of the equilibrium population): frames 3948-5447, inside the longest phi < 0
stretch of the run.

* Adaptive arm (``lss_jax.adaptive.adaptive_sampling``): per round, train an LSS with a 4-member
  propagator ensemble on all data so far, pick 10 seeds (LSS stationary density over MD density plus
  ensemble uncertainty, distinct seeds), run 200 ps of OpenMM MD from each (the shipped protocol), append.
* Plain arm: one OpenMM trajectory continuing from the last initial frame, 2 ns per round (the same MD
  cost as the 10 x 200 ps of a round).

Per round and arm: coverage of the Ramachandran plane (fraction of the bins populated in the independent
50 ns reference that the gathered MD has visited), frames in alpha_L, and an LSS trained on the data
gathered so far: its F(phi, psi) RMSE against the reference over the reference's populated bins that the
LSS visits, and the fraction of those bins the LSS visits at all (a model cannot generate a basin its data
never saw; the RMSE alone would hide that). The adaptive arm's model of round r is the one
``adaptive_sampling`` trained to pick round r's seeds (data up to round r - 1); one more model is
trained on its final data. Repeated for ``--seeds`` (LSS training, MD and PRNG seeds), mean and
standard deviation over them.

    python benchmarks/studies/adaptive_ala2.py          # 3 seeds, ~25 min each on 2 CPU cores -> results/adaptive_ala2-cpu.json
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from lss_jax import LSS, DecoderConfig, EncoderConfig, LSSConfig, PropagatorConfig
from lss_jax.adaptive import adaptive_sampling
from lss_jax.analysis import distributions
from lss_jax.analysis.torsions import phi_psi
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.datasets import alanine_dipeptide_files, load_alanine_dipeptide
from lss_jax.systems.md import MDSystem, run_md

RESULTS = Path(__file__).resolve().parents[1] / "results"
START, N_INIT = 3948, 1500


def coverage(pp, p_ref):
    _, p, _, _ = distributions.free_energy_2d(pp[:, 0], pp[:, 1])
    ref = p_ref >= 1e-3 * p_ref.max()
    return float(np.mean(p[ref] > 0))


def lss_metrics(trajs, config, ref, key, model=None):
    model = model or LSS(config=config).fit(trajs, progress=False)
    traj = model.generate(key, 100, 1000, progress=False)
    pp = phi_psi(traj)
    f, p, _, _ = distributions.free_energy_2d(pp[:, 0], pp[:, 1])
    rmse, n = distributions.free_energy_rmse_2d(f, ref["p"], ref["f"])
    return {"f_phi_psi_rmse_kT": rmse, "n_bins_compared": int(n), "lss_coverage": coverage(pp, ref["p"]),
            "lss_alpha_l_fraction": float(np.mean(pp[:, 0] > 0))}


def run_seed(seed, args, system, init, ref, p_ref, work: Path) -> dict:
    import mdtraj as md

    # the decoder these results were measured with: the paper's cWGAN-GP (aligned Cartesian, constant learning rate)
    config = LSSConfig(lag=5, encoder=EncoderConfig(latent_dim=2, epochs=10),
                       propagator=PropagatorConfig(epochs=20, ensemble_size=4),
                       decoder=DecoderConfig(kind="wgan", coordinates="cartesian", lr_decay=False, iterations=3000),
                       seed=seed)
    per_round_md = args.n_seeds * args.md_frames
    start = time.perf_counter()
    out = work / f"adaptive-{seed}"
    logs = adaptive_sampling([init], config, out, system=system, n_rounds=args.rounds, n_seeds=args.n_seeds,
                             md_frames=args.md_frames, seed=seed, progress=False)
    top = str(out / "topology.pdb")
    adaptive_trajs = [init] + [md.load(str(out / f"round-{e['round']:03d}" / f), top=top)
                               for e in logs for f in e["md_files"]]
    adaptive_seconds = time.perf_counter() - start
    plain, last = [init], init.xyz[-1]
    for r in range(args.rounds):
        t = run_md(system, per_round_md, start_xyz=last, frame_interval_ps=2.0, seed=1000 + seed * 10 + r,
                   progress=False)
        plain.append(t)
        last = t.xyz[-1]
    rows = []
    n_adapt = [1] + [1 + args.n_seeds * (r + 1) for r in range(args.rounds)]
    key = jax.random.key(1)
    for r in range(args.rounds + 1):
        a = np.concatenate([phi_psi(t) for t in adaptive_trajs[: n_adapt[r]]])
        p = np.concatenate([phi_psi(t) for t in plain[: r + 1]])
        # the model adaptive_sampling trained on the data before round r picked round r's seeds
        a_model = LSS.load(out / f"round-{r:03d}" / "model") if r < args.rounds else None
        lss_a = lss_metrics(adaptive_trajs[: n_adapt[r]], config, ref, key, model=a_model)
        lss_p = lss_a if r == 0 else lss_metrics(plain[: r + 1], config, ref, key)  # round 0: the same data
        rows.append({"round": r, "md_frames": int(N_INIT + r * per_round_md),
                     "adaptive": {"coverage": coverage(a, p_ref), "alpha_l_frames": int(np.sum(a[:, 0] > 0)), **lss_a},
                     "plain": {"coverage": coverage(p, p_ref), "alpha_l_frames": int(np.sum(p[:, 0] > 0)), **lss_p}})
        print(f"seed {seed} round {r}: " + "  ".join(
            f"{arm} cov {rows[-1][arm]['coverage']:.3f} aL {rows[-1][arm]['alpha_l_frames']} "
            f"F {rows[-1][arm]['f_phi_psi_rmse_kT']:.2f} kT" for arm in ("adaptive", "plain")), flush=True)
    return {"seed": seed, "rounds": rows, "round_logs": logs, "adaptive_seconds": adaptive_seconds,
            "seconds": time.perf_counter() - start}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/adaptive_ala2-cpu.json)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-seeds", type=int, default=10)
    parser.add_argument("--md-frames", type=int, default=100, help="2 ps frames per seed trajectory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    out = args.out or RESULTS / "adaptive_ala2-cpu.json"
    files = alanine_dipeptide_files()
    system = MDSystem(pdb=files["pdb"], prmtop=files["prmtop"])
    full = load_alanine_dipeptide("train")
    init = full[START : START + N_INIT]
    assert np.all(phi_psi(init)[:, 0] <= 0), "the initial data must not visit alpha_L"
    indep = phi_psi(load_alanine_dipeptide("independent"))
    f_ref, p_ref, _, _ = distributions.free_energy_2d(indep[:, 0], indep[:, 1])
    ref = {"f": f_ref, "p": p_ref}
    start = time.perf_counter()
    repeats = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            repeats.append(run_seed(seed, args, system, init, ref, p_ref, Path(tmp)))
            summary = {}
            for arm in ("adaptive", "plain"):
                summary[arm] = {}
                for k in ("coverage", "alpha_l_frames", "f_phi_psi_rmse_kT", "lss_coverage", "lss_alpha_l_fraction"):
                    v = np.array([[row[arm][k] for row in rep["rounds"]] for rep in repeats], np.float64)
                    summary[arm][k] = {"mean": v.mean(0).round(4).tolist(),
                                       "std": (v.std(0, ddof=1) if len(v) > 1 else np.zeros(v.shape[1])).round(4).tolist()}
            write_results(out, {
                "benchmark": "adaptive_ala2", "initial": {"start_frame": START, "frames": N_INIT},
                "rule": "lss_jax.adaptive default: beta = 0 (least counts) + ensemble uncertainty, distinct seeds",
                "n_seeds": args.n_seeds, "md_frames_per_seed": args.md_frames, "seeds": args.seeds[: len(repeats)],
                "md_frames_per_round": [row["md_frames"] for row in repeats[0]["rounds"]],
                "summary": summary, "repeats": repeats, "seconds": time.perf_counter() - start,
                "machine": machine_facts(), "date": time.strftime("%Y-%m-%d"),
            })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
