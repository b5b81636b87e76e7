"""Where a generated F(phi, psi) departs from MD's: the per-bin error binned by MD's free energy above its minimum.

The report's F(phi, psi) RMSE (10 degree bins with p >= 10^-3 of the largest, the constant removed) says how far
generated frames are from MD; this script says where: for each trajectory given, the mean signed and the RMS error
of its bins within 0-2, 2-4, 4-6 and above 6 kT of MD's minimum. A negative mean error in the low bands and a
positive one in the high bands is a distribution narrower than MD's (too much weight in the basins, too little in
the tails); the reverse, a broader one. Used in docs/decoder_record.md on the 100 ns alanine dipeptide validation's LSS
frames, decoded by the 10-step flow and by the one-step student:

    python benchmarks/studies/free_energy_levels.py --md ala2-seed2.xtc --top alanine-dipeptide.pdb \\
        flow=lss_teacher.xtc:lss_teacher.pdb student=lss_student.xtc:lss_student.pdb

The same for F(TIC1) of Trp-cage (50 bins), from the TIC1 histograms a ``trp_cage_protocol.py`` JSON keeps, each row
against the independent runs pooled (docs/decoder_record.md, the student against its teacher):

    python benchmarks/studies/free_energy_levels.py \\
        --protocol-json benchmarks/results/trp_cage_protocol-cpu_protocol_distilled_vs_teacher.json
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import mdtraj as md
import numpy as np

from lss_jax.analysis.distributions import free_energy_2d
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results

RESULTS = Path(__file__).resolve().parents[1] / "results"
LEVELS = ((0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, np.inf))


def histogram(traj: md.Trajectory) -> np.ndarray:
    """Bin probabilities of (phi, psi) in 10 degree bins, as the report's F(phi, psi)."""
    return free_energy_2d(md.compute_phi(traj)[1][:, 0], md.compute_psi(traj)[1][:, 0], bins=36)[1]


def levels(md_hist: np.ndarray, hist: np.ndarray) -> dict:
    """RMSE over MD's bins with p >= 10^-3 max (constant removed) and the error by MD free-energy band."""
    mask = md_hist >= 1e-3 * md_hist.max()
    f_md = -np.log(md_hist[mask])
    with np.errstate(divide="ignore"):
        f = -np.log(hist[mask])
    seen = np.isfinite(f)
    err = np.where(seen, f - f_md, np.nan)
    err -= np.nanmean(err)
    above = f_md - f_md.min()
    bands = {}
    for lo, hi in LEVELS:
        sel = (above >= lo) & (above < hi)
        if sel.any():  # an empty band (F(TIC1)'s reach ends below 6 kT) is left out
            bands[f"{lo:g}-{hi:g}_kT"] = {"n_bins": int(sel.sum()), "mean_signed_kT": float(np.nanmean(err[sel])),
                                          "rms_kT": float(np.sqrt(np.nanmean(err[sel] ** 2)))}
    return {"rmse_kT": float(np.sqrt(np.nanmean(err**2))), "n_bins": int(mask.sum()), "unvisited_bins": int((~seen).sum()),
            "bands": bands}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/free_energy_levels-<backend>.json)")
    parser.add_argument("--md", help="the reference MD trajectory")
    parser.add_argument("--top", help="its topology")
    parser.add_argument("generated", nargs="*", help="NAME=TRAJ:TOP, one per generated trajectory")
    parser.add_argument("--protocol-json", type=Path, default=None,
                        help="instead of trajectories: a trp_cage_protocol.py JSON; its rows' F(TIC1) (their "
                             "tic1_counts) against the pooled MD runs' (md.tic1_pooled_counts), by level")
    args = parser.parse_args(argv)

    if args.protocol_json:
        data = json.loads(args.protocol_json.read_text())
        md_hist, reference = np.asarray(data["md"]["tic1_pooled_counts"], float), "pooled MD runs"
        hists = {f"seed {seed} {label}": np.asarray(row["tic1_counts"], float) for seed, run in data["runs"].items()
                 for label, row in run.items() if isinstance(row, dict) and "tic1_counts" in row}
        what, default_out = "F(TIC1)", f"free_energy_levels-{jax.default_backend()}_{args.protocol_json.stem}.json"
    else:
        if not (args.md and args.top and args.generated):
            raise SystemExit("give --md, --top and NAME=TRAJ:TOP for each generated trajectory, or --protocol-json.")
        md_hist, reference, hists = histogram(md.load(args.md, top=args.top)), Path(args.md).name, {}
        for item in args.generated:
            name, _, files = item.partition("=")
            traj_path, _, top_path = files.partition(":")
            if not (name and traj_path and top_path):
                raise SystemExit(f"{item!r}: give each generated trajectory as NAME=TRAJ:TOP.")
            hists[name] = histogram(md.load(traj_path, top=top_path))
        what, default_out = "F(phi, psi)", f"free_energy_levels-{jax.default_backend()}.json"
    results = {"benchmark": "free_energy_levels", "backend": jax.default_backend(), "machine": machine_facts(),
               "md": reference, "runs": {}}
    for name, hist in hists.items():
        row = levels(md_hist, hist)
        results["runs"][name] = row
        bands = "; ".join(f"{band} {b['mean_signed_kT']:+.3f} (rms {b['rms_kT']:.3f})" for band, b in row["bands"].items())
        print(f"{name}: {what} RMSE {row['rmse_kT']:.3f} kT over {row['n_bins']} bins | {bands}", flush=True)
    write_results(args.out or RESULTS / default_out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
