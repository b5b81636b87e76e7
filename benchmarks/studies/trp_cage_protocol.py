"""The Trp-cage protocol with a generative decoder, seed by seed, against the targets of the generative protein
decoder issue, with retrieval decoding the same latent trajectories beside it (which isolates the decoder).

For each seed: ``fit_lss`` on the shipped training run with ``trp_cage.lss_config(seed=seed, decoder=...)`` (every
frame a first draw: ``redraws = 0``), ``--n-traj`` latent trajectories as long as the training run (2800 lags of
50 ps), decoded by the trained decoder and, on the same latent points, by a retrieval decoder (``knn``) fitted on the
same training frames and latent points; each scored against the shipped independent run:

* folding (``lss_jax.systems.folding.folding_metrics``, frames 50 ps apart): folded fraction, folding + unfolding
  transitions per µs, Cα-RMSD to native of folded frames, the first-draw validity rates (a Cα pair ``|i - j| >= 4``
  closer than 0.3 nm, a virtual bond more than 10 % off its MD mean);
* F(TIC1): MD's TICA of all Cα distances at the lag, the decoded frames projected on it, RMSE over 50 bins, against
  the independent run (``f_tic1_kT``) and against the independent runs pooled (``f_tic1_pooled_kT``: the shipped one
  and ``--reference-seeds`` more runs of the shipped protocol, cached after the first simulation; the issue's "mean of
  the independent runs"), with MD's own floor beside it: each of those runs against the others pooled
  (``md.f_tic1_pooled_leave_one_out_kT``); its error from one bootstrap over the latent trajectories, the same
  resampled trajectories for every row, and each row's difference from the decoder's with that difference's own error
  (``f_tic1_pooled_kT_se``, ``f_tic1_pooled_minus_decoder_kT`` and ``..._se``: how a distilled student is compared
  with its teacher); and each row's profile against the decoder's own (``f_tic1_vs_decoder_kT``, ``..._se``), whose
  floor, with ``--distill``, is the decoder against itself decoded with other keys (row ``decoder/other_keys``); every
  row's TIC1 histogram is kept (``tic1_counts``, MD's pooled one and the bin edges under ``md``);
* t1 in the latent space (reversible estimator at the lag, LSS against the independent run encoded) and on the
  decoded structures (TICA of the generated Cα distances at the lag, against MD's at the same lag; and, with neither
  side fitted in-sample, along the training run's TIC1 of the Cα distances: ``t1_decoded_train_tic1_ps``); for a
  decoder's rows also the decoded t1's difference from retrieval's on the same latent trajectories, with the errors of
  both and of the difference from one bootstrap over the trajectories (``t1_decoded_minus_knn_ps`` and ``..._se``);
* the folded fraction's and the transitions' errors from the same bootstrap over the latent trajectories (``resamples``), and each
  decoder row's difference from retrieval on the same trajectories with that difference's error
  (``folded_fraction_se``, ``folded_fraction_minus_knn`` and ``..._se``, ``transitions_over_knn`` and ``..._se``);
* radius of gyration; novelty: median Cα-RMSD of 400 frames to their nearest training frame (every training frame),
  generated against independent MD.

    python benchmarks/studies/trp_cage_protocol.py --seeds 0 1 2 --tag _protocol   # the protocol's decoder
    python benchmarks/studies/trp_cage_protocol.py --decoder chain --seeds 0 1 2
    python benchmarks/studies/trp_cage_protocol.py --decoder chain --seeds 1 --tag _seed1   # one seed a process
    python benchmarks/studies/trp_cage_protocol.py --decoder chain --seeds 0 --template-times 0.3 0.5 0.7
    python benchmarks/studies/trp_cage_protocol.py --decoder chain-contact-map --temperatures 0.85 1.0 --tag _contact_map
    python benchmarks/studies/trp_cage_protocol.py --decoder chain-native-contacts --temperatures 1.0 --tag _native_contacts
    python benchmarks/studies/trp_cage_protocol.py --decoder chain-native-contacts --no-linear-floor --tag _native_contacts_plain  # the plain SRV
    python benchmarks/studies/trp_cage_protocol.py --decoder chain-native-contacts --seeds 0 --epochs 150 --temperatures 1.0 \
        --tag _native_contacts_e150_seed0                        # the field trained 3x longer (seeds 0, 1: one JSON each)

benchmarks/results/trp_cage_protocol-cpu_state_mean.json holds the same study of the default's predecessor (its
Gaussian prior's mean constant in psi within a state, sampled at temperature 0.8), made with this script before the
mean became linear in psi.
    python benchmarks/studies/trp_cage_protocol.py --decoder chain-native-contacts-cfg --seeds 0 --epochs 300 \
        --temperatures 1.0 --guidances 1.5 2 3 --model-dir M --tag _native_contacts_cfg_e300_seed0   # guidance
    python benchmarks/studies/trp_cage_protocol.py --seeds 0 --model-dir M --distill 1 2 --reference-seeds \
        --tag _protocol_distilled_seed0                          # the protocol's decoder distilled (decode cost)
    python benchmarks/studies/trp_cage_protocol.py --seeds 0 1 --model-dir M --distill 1 --distill-iterations 5000 \
        --tag _protocol_distilled_bootstrap                      # the same, F(TIC1) against seven MD runs, with errors
    python benchmarks/studies/trp_cage_protocol.py --seeds 0 1 --model-dir M --distill 1 \
        --tag _protocol_distilled_vs_teacher                     # the same at 20 000 steps, the student against its teacher
    python benchmarks/studies/trp_cage_protocol.py --decoder knn --seeds 0 1 2 3 4 5 --n-traj 100 \
        --tag _knn_n100                                          # the latent paths' own folding, at the protocol's 100
    python benchmarks/studies/trp_cage_protocol.py --seeds 1 2 --n-traj 100 --model-dir M --noise-memories auto \
        --memory-only --tag _protocol_n100_memory_seed12         # rho recalibrated by LSSModel.with_noise_memory
    python benchmarks/studies/trp_cage_protocol.py --decoder chain --seeds 0 --n-traj 4 --epochs 2   # smoke run
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import jax
import mdtraj as md
import numpy as np

from lss_jax.analysis.distributions import free_energy_rmse, histogram_free_energy
from lss_jax.analysis.lagchoice import paired_tica_timescale
from lss_jax.analysis.structure import nearest_frame_rmsd
from lss_jax.benchmarking import benchmark_parser, fit_or_load, machine_facts, write_results
from lss_jax.decoder import DecoderConfig, distill_decoder, fit_decoder, template_start
from lss_jax.encoder import implied_timescales, reversible_decomposition
from lss_jax.systems import trp_cage as tc
from lss_jax.systems.folding import folding_metrics
from lss_jax.systems.go import core_states, folding_transitions, fraction_native_contacts

RESULTS = Path(__file__).resolve().parents[1] / "results"
DECODERS = {  # name -> DecoderConfig fields; each but "protocol" on top of its kind's own defaults (CHAIN_OWN)
    "protocol": {},  # the protocol's decoder as trp_cage.lss_config() has it (trp_cage.DECODER)
    "chain": {"kind": "chain"},
    "chain-gaussian-prior": {"kind": "chain", "prior": "gaussian"},
    "chain-chain-prior": {"kind": "chain", "prior": "chain"},
    "chain-self-conditioned": {"kind": "chain", "self_condition": True},
    "chain-wide": {"kind": "chain", "hidden": (128, 128, 128, 128)},  # 4 blocks of 128 features (an accelerator's)
    "chain-template": {"kind": "chain", "template_time": 0.5},  # paths started at t0 = 0.5 from training frames
    "chain-contact-states": {"kind": "chain", "states": 48, "state_features": "contacts", "temperature": 0.8},
    # the state is the frame's contact map, drawn by an autoregressive model of psi (lss_jax.decoder.contacts)
    "chain-contact-map": {"kind": "chain", "state_features": "contact_map"},
    # the same with the native contacts Q counts as the map (decoder.contact_reference: the native structure)
    "chain-native-contacts": {"kind": "chain", "state_features": "contact_map",
                              "contact_reference": str(tc.trp_cage_files()["pdb"])},
    # the same, trained with condition dropout for classifier-free guidance (score it with --guidances)
    "chain-native-contacts-cfg": {"kind": "chain", "state_features": "contact_map", "condition_dropout": 0.1,
                                  "contact_reference": str(tc.trp_cage_files()["pdb"])},
    "flow": {"kind": "flow"},
    # retrieval as the decoder: the latent paths' own folding, cheaply (the propagator's part of a decoded figure)
    "knn": {"kind": "knn"},
}
# the chain decoder's own defaults where the protocol's decoder (trp_cage.DECODER) sets its fields: the variants above
# were measured from these (the protocol's chain settings came out of them)
CHAIN_OWN = {"state_features": "distances", "contact_reference": "", "epochs": None, "temperature": None}


def t1(series: list[np.ndarray], lag: int, lag_time_ps: float) -> float:
    """The slowest implied timescale (ps) of the reversible decomposition of ``series`` at ``lag`` frames."""
    return float(implied_timescales(reversible_decomposition(series, lag).eigenvalues[:1], lag_time_ps)[0])


def pair_distances(xyz: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``[B, T, n_pairs]`` distances of ``pairs`` in trajectories ``xyz [B, T, n, 3]``."""
    flat = xyz.reshape(-1, *xyz.shape[2:])
    return np.linalg.norm(flat[:, pairs[:, 0]] - flat[:, pairs[:, 1]], axis=-1).reshape(*xyz.shape[:2], -1)


def tic1_of(dist: np.ndarray, md_ctx: dict) -> np.ndarray:
    """``[B, T]`` projections of Cα distances ``dist [B, T, n_pairs]`` on MD's TIC1."""
    return (dist - md_ctx["tica_mean"]) @ md_ctx["tica_vector"]


def pooled_rmse(f_lss: np.ndarray, md_ctx: dict) -> float:
    """F(TIC1)'s RMSE (kT) of the profile ``f_lss`` against the independent runs pooled, on their well-sampled bins."""
    return free_energy_rmse(f_lss, md_ctx["f_tic1_pooled"], md_ctx["tic1_pooled_mask"])


def resamples(n: int, n_bootstrap: int = 200, seed: int = 0) -> np.ndarray:
    """``[n_bootstrap, n]`` trajectory indices drawn with replacement: the bootstrap every error of a seed's rows shares."""
    rng = np.random.default_rng(seed)
    return np.array([rng.integers(0, n, n) for _ in range(n_bootstrap)])


def f_tic1_errors(tic1s: dict[str, np.ndarray], md_ctx: dict, against: str = "decoder", n_bootstrap: int = 200,
                  seed: int = 0) -> dict[str, dict]:
    """Bootstrap errors of F(TIC1) against the pooled runs, over the latent trajectories, the same resampled
    trajectories for every row (each row ``[B, T]``, decoded from the same ``B`` latent trajectories).

    Returns per row ``f_tic1_pooled_kT_se`` and, for rows other than ``against``, the row's F(TIC1) minus
    ``against``'s (``f_tic1_pooled_minus_<against>_kT``, the point estimate from all trajectories) and that
    difference's own bootstrap error (``..._se``, from the same resamples, so what the rows' latent trajectories share
    cancels from it); and the RMSE of the row's profile against ``against``'s own, on the pooled runs' bins
    (``f_tic1_vs_<against>_kT`` and ``..._se``: how far a student's law is from its teacher's, whose floor is the
    teacher against itself decoded with other keys).
    """
    def profile(tic1):
        return histogram_free_energy(tic1, md_ctx["tic1_edges"])[0]

    def numbers(rows):  # per label: F(TIC1) against the pooled runs, and against `against`'s profile
        profiles = {label: profile(tic1s[label][rows]) for label in labels}
        reference = profiles.get(against)
        return [[pooled_rmse(f, md_ctx),
                 np.nan if reference is None else free_energy_rmse(f, reference, md_ctx["tic1_pooled_mask"])]
                for f in profiles.values()]

    labels = list(tic1s)
    full = np.array(numbers(slice(None)))
    draws = np.array([numbers(rows) for rows in resamples(len(next(iter(tic1s.values()))), n_bootstrap, seed)])
    out = {label: {"f_tic1_pooled_kT_se": float(draws[:, i, 0].std(ddof=1))} for i, label in enumerate(labels)}
    if against in tic1s:
        base = labels.index(against)
        for i, label in enumerate(labels):
            if label != against:
                out[label][f"f_tic1_pooled_minus_{against}_kT"] = float(full[i, 0] - full[base, 0])
                out[label][f"f_tic1_pooled_minus_{against}_kT_se"] = float((draws[:, i, 0] - draws[:, base, 0]).std(ddof=1))
                out[label][f"f_tic1_vs_{against}_kT"] = float(full[i, 1])
                out[label][f"f_tic1_vs_{against}_kT_se"] = float(draws[:, i, 1].std(ddof=1))
    return out


def folding_counts(xyz: np.ndarray) -> np.ndarray:
    """``[B, 3]``: per trajectory of ``xyz [B, T, n, 3]``, its folded frames, its frames assigned a state and its
    folding + unfolding transitions, as :func:`folding_metrics` counts them (so the sums give its LSS figures)."""
    go = tc.trp_cage_go_model()
    rows = []
    for x in xyz:
        q = fraction_native_contacts(go, x)
        states, events = core_states(q), folding_transitions(q)
        rows.append([np.sum(states == 1), np.sum(states >= 0), events.n_folding + events.n_unfolding])
    return np.array(rows, float)


def folding_errors(counts: dict[str, np.ndarray], n_bootstrap: int = 200, seed: int = 0) -> dict[str, dict]:
    """Bootstrap errors over the latent trajectories of each row's folded fraction and transition count (the same
    resampled trajectories as :func:`f_tic1_errors`, :func:`resamples`), and of each row's difference from
    retrieval's (row ``knn_same_latent``) on the same trajectories (``folded_fraction_minus_knn``, ``..._se``; the
    transitions as a ratio, ``transitions_over_knn``), so what the latent paths share cancels from the difference."""
    def figures(c):  # [..., B, 3] -> folded fraction, transitions per frame (the rate's scale cancels in ratios)
        return c[..., 0].sum(-1) / c[..., 1].sum(-1), c[..., 2].sum(-1)

    against = "knn_same_latent"
    draws = resamples(len(next(iter(counts.values()))), n_bootstrap, seed)
    out = {}
    for label, c in counts.items():
        folded, events = figures(c[draws])
        row = {"folded_fraction_se": float(folded.std(ddof=1)),
               "transitions_per_us_relative_se": float((events / events.mean()).std(ddof=1))}
        if label != against and against in counts:
            base_folded, base_events = figures(counts[against][draws])
            full_folded, full_events = figures(c)
            base_full_folded, base_full_events = figures(counts[against])
            row.update(folded_fraction_minus_knn=float(full_folded - base_full_folded),
                       folded_fraction_minus_knn_se=float((folded - base_folded).std(ddof=1)),
                       transitions_over_knn=float(full_events / base_full_events),
                       transitions_over_knn_se=float((events / base_events).std(ddof=1)))
        out[label] = row
    return out


def score(xyz: np.ndarray, latent: np.ndarray, md_ctx: dict, train, frame_ps: float, lag: int,
          versus: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """The issue's numbers for decoded trajectories ``xyz [B, T, n, 3]`` (frames one lag apart) of ``latent``, and
    their ``[B, T]`` projections on MD's TIC1 (for :func:`f_tic1_errors`);
    with ``versus`` (retrieval's Cα distances on the same latent trajectories) also the decoded t1's difference from
    retrieval's and the errors of both, from one bootstrap over the trajectories (``lss_jax.analysis.lagchoice.
    paired_tica_timescale``)."""
    tau = lag * frame_ps
    folding = folding_metrics(tc.trp_cage_go_model(), [md_ctx["xyz"]], xyz, md_frame_time=frame_ps, lss_frame_time=tau)
    flat = xyz.reshape(-1, *xyz.shape[2:])
    dist = pair_distances(xyz, md_ctx["pairs"])
    tic1 = tic1_of(dist, md_ctx)
    f_lss, _ = histogram_free_energy(tic1, md_ctx["tic1_edges"])
    rg = np.sqrt(((flat - flat.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    rows = np.random.default_rng(0).choice(len(flat), 400, replace=False)
    novelty = nearest_frame_rmsd(md.Trajectory(flat[rows], train.topology), train, max_generated=400,
                                 max_reference=train.n_frames, seed=0)
    paired = {}
    if versus is not None:  # errors in ps; the point estimates are t1_decoded_ps's estimator (whitened TICA)
        r = paired_tica_timescale(list(dist), list(versus), 1)
        paired = {"t1_decoded_ps_se": r["a_se"] * tau, "t1_knn_ps_se": r["b_se"] * tau,
                  "t1_decoded_minus_knn_ps": r["difference"] * tau, "t1_decoded_minus_knn_ps_se": r["difference_se"] * tau}
    return {
        **paired,
        "folded_fraction": folding["folded_fraction"]["lss"],
        "transitions_per_us": folding["transitions_per_us"]["lss"],
        "f_tic1_kT": free_energy_rmse(f_lss, md_ctx["f_tic1"], md_ctx["tic1_mask"]),
        "f_tic1_pooled_kT": pooled_rmse(f_lss, md_ctx),
        "t1_latent_ps": t1(list(latent), 1, tau),
        "t1_decoded_ps": t1(list(dist), 1, tau),
        # along a coordinate fixed in advance (the training run's TIC1), so neither side's TICA is fitted in-sample
        "t1_decoded_train_tic1_ps": t1([(d - md_ctx["train_tica_mean"]) @ md_ctx["train_tica_vector"][:, None]
                                        for d in dist], 1, tau),
        "pair_closer_than_0.3nm_frames": folding["close_pairs"]["separation_4"]["lss"]["fraction_frames_below_0.3nm"],
        "closest_pair_nm": folding["close_pairs"]["separation_4"]["lss"]["min_nm"],
        "bond_off_10pct_frames": folding["virtual_bonds"]["fraction_frames_off_10pct"]["lss"],
        "rmsd_to_native_folded_nm": folding["rmsd_to_native_folded_nm"]["lss"],
        "radius_of_gyration_nm": [float(rg.mean()), float(rg.std())],
        "novelty_nm": float(np.median(novelty)),
        "tic1_counts": np.histogram(tic1, md_ctx["tic1_edges"])[0].tolist(),  # F(TIC1)'s histogram, for later study
        "md": {"folded_fraction": [folding["folded_fraction"]["md"], folding["folded_fraction"]["md_se"]],
               "transitions_per_us": [folding["transitions_per_us"]["md"], folding["transitions_per_us"]["md_se"]],
               "rmsd_to_native_folded_nm": folding["rmsd_to_native_folded_nm"]["md"]},
    }, tic1


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/trp_cage_protocol-<backend>{TAG}.json)")
    parser.add_argument("--tag", default="", help="suffix of the default JSON name")
    parser.add_argument("--decoder", default="protocol", choices=sorted(DECODERS),
                        help="the decoder (default: the protocol's own, trp_cage.lss_config()'s; the others are the "
                             "variants measured on the way, from their kind's defaults)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-traj", type=int, default=20, help="latent trajectories per seed (default 20)")
    parser.add_argument("--linear-floor", action=argparse.BooleanOptionalAction, default=True,
                        help="encoder.linear_floor (the default); --no-linear-floor keeps the plain SRV, as the "
                             "measurements before 2026-12-06 were made")
    parser.add_argument("--epochs", type=int, default=None, help="decoder epochs (default: the kind's own)")
    parser.add_argument("--temperature", type=float, default=None, help="chain decoders: the prior temperature")
    parser.add_argument("--temperatures", type=float, nargs="+", default=None,
                        help="chain decoders: also score the same trained decoder and latent trajectories sampled at "
                             "each of these prior temperatures (rows decoder@T)")
    parser.add_argument("--guidances", type=float, nargs="+", default=None,
                        help="chain decoders trained with condition dropout: also score the same trained decoder and "
                             "latent trajectories sampled with each of these classifier-free guidance weights, at the "
                             "decoder's temperature and at each of --temperatures (rows decoder@T,w=W)")
    parser.add_argument("--noise-memories", nargs="+", default=None,
                        help="then also decode the same latent trajectories with decoder noise memory (a number in "
                             "[0, 0.95] or 'auto': calibrated on the training run, LSSModel.with_noise_memory), at "
                             "each of --temperatures (or the decoder's own; rows decoder@T,memory=M)")
    parser.add_argument("--memory-only", action="store_true",
                        help="of the decoder's rows, score only the --noise-memories ones (the others are a run "
                             "without it's: same keys, same bits)")
    parser.add_argument("--template-times", type=float, nargs="+", default=None,
                        help="chain decoders: also score the same trained decoder and latent trajectories with every "
                             "path started at each of these times t0 from a training frame near psi (decoder.template_time; "
                             "rows decoder/t0=T, at the decoder's temperature)")
    parser.add_argument("--distill", type=int, nargs="+", default=None, metavar="K",
                        help="also distil the trained decoder into a student sampled with K Euler steps "
                             "(decoder.distill_steps; lss_jax.decoder.distill_decoder, on the training frames' latent "
                             "points, the trailing 10 %% held out) and score it on the same latent trajectories, with "
                             "its decode frames/s beside the teacher's (rows decoder/distilled=K)")
    parser.add_argument("--distill-iterations", type=int, default=20_000,
                        help="the distillation's optimizer steps, at most (default 20 000, the library's cap)")
    parser.add_argument("--distill-draws", type=int, default=None,
                        help="teacher couplings per training frame (default: the library's, 2 x 10^5 in all)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="keep each seed's trained model in MODEL_DIR/seed<S> and load it from there when it was "
                             "trained with the same configuration (so a later study, or a rerun, skips the training)")
    parser.add_argument("--reference-seeds", type=int, nargs="*", default=[3, 4, 5, 6, 7, 8],
                        help="seeds of the MD runs pooled with the independent run as F(TIC1)'s reference (default "
                             "3..8: the seven independent runs of the folding targets; ~2 min each the first time)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    train, independent = tc.load_trp_cage("train"), tc.load_trp_cage("independent")
    frame_ps = float(independent.timestep)
    own = CHAIN_OWN if DECODERS[args.decoder].get("kind") == "chain" else {}
    fields = {**own, **DECODERS[args.decoder], "redraws": 0,
              **({"epochs": args.epochs} if args.epochs else {}),
              **({"temperature": args.temperature} if args.temperature else {})}
    # MD's side, fixed for every seed: TICA of the independent run's Cα distances at the protocol's lag
    lag = tc.lss_config().lag
    pairs = np.array(list(itertools.combinations(range(independent.n_atoms), 2)))
    d_md = md.compute_distances(independent, pairs)
    tica = reversible_decomposition([d_md], lag)
    tic1_md = (d_md - tica.mean[None]) @ tica.vectors[:, 0]
    edges = np.linspace(tic1_md.min(), tic1_md.max(), 51)

    def pooled_profile(series):  # F(TIC1) of runs pooled, and the bins it compares (the metric's mask)
        f, p = histogram_free_energy(np.concatenate(series), edges)
        return f, p >= 1e-3 * p.max()

    # the independent runs pooled (projected on the same TIC1): about a seventh of one run's sampling variance
    runs_tic1 = [tic1_md] + [(md.compute_distances(tc.simulate_trp_cage(tc.SHIPPED_N_FRAMES, seed=s, progress=False),
                                                   pairs) - tica.mean[None]) @ tica.vectors[:, 0]
                             for s in args.reference_seeds]
    md_ctx = {"xyz": independent.xyz, "pairs": pairs, "tica_mean": tica.mean, "tica_vector": tica.vectors[:, 0],
              "tic1_edges": edges}
    md_ctx["f_tic1"], md_ctx["tic1_mask"] = pooled_profile(runs_tic1[:1])
    md_ctx["f_tic1_pooled"], md_ctx["tic1_pooled_mask"] = pooled_profile(runs_tic1)
    # the same slow coordinate fitted on the training run: the in-sample TICA above is biased up (on MD, 222 ps in
    # sample against 208 along the training run's TIC1), and differently for MD's 28 000 frames and the LSS's 56 000
    d_train = md.compute_distances(train, pairs)
    train_tica = reversible_decomposition([d_train], lag)
    md_ctx.update(train_tica_mean=train_tica.mean, train_tica_vector=train_tica.vectors[:, 0])
    md_numbers = {"tic1_edges": edges.tolist(), "tic1_pooled_counts": np.histogram(np.concatenate(runs_tic1),
                                                                                   edges)[0].tolist(),
                  "t1_decoded_ps": t1([d_md], lag, lag * frame_ps),
                  "t1_decoded_train_tic1_ps": t1([(d_md - train_tica.mean) @ train_tica.vectors[:, :1]], lag,
                                                 lag * frame_ps)}
    if len(runs_tic1) > 1:  # MD's floor: each run against the others pooled
        md_numbers["f_tic1_pooled_leave_one_out_kT"] = [
            free_energy_rmse(histogram_free_energy(run, edges)[0],
                             *pooled_profile(runs_tic1[:i] + runs_tic1[i + 1:])) for i, run in enumerate(runs_tic1)]
    rows_md = np.random.default_rng(0).choice(independent.n_frames, 400, replace=False)
    md_numbers["novelty_nm"] = float(np.median(nearest_frame_rmsd(independent[rows_md], train, max_generated=400,
                                                                  max_reference=train.n_frames, seed=0)))
    encoder = {"encoder": {"linear_floor": args.linear_floor}}
    runs = {}

    def save():  # after every seed, so a run stopped by a time limit keeps the seeds it finished
        write_results(args.out or RESULTS / f"trp_cage_protocol-{jax.default_backend()}{args.tag}.json", {
            "benchmark": "trp_cage_protocol", "decoder": args.decoder, "config": fields, "n_traj": args.n_traj,
            "linear_floor": args.linear_floor, "reference_seeds": args.reference_seeds,
            "description": "Trp-cage protocol with a generative decoder against the independent run, per seed, "
                           "retrieval on the same latent trajectories beside it",
            "md": md_numbers, "runs": runs, "seconds": time.perf_counter() - start, "machine": machine_facts(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    for seed in args.seeds:
        t0 = time.perf_counter()
        model = fit_or_load(seed, [train], tc.lss_config(seed=seed, decoder=fields, **encoder),
                            args.model_dir and args.model_dir / f"seed{seed}", progress=False)
        trained = time.perf_counter() - t0
        u_train = model.to_unit(model.encode(train))
        latent = model.generate(jax.random.key(100 + seed), args.n_traj, train.n_frames // lag, latent_only=True,
                                progress=False)
        md_latent_t1 = t1([model.encode(independent)], lag, lag * frame_ps)
        knn, _ = fit_decoder(jax.random.key(seed), train.xyz, u_train, topology=train.topology,
                             config=DecoderConfig(kind="knn", redraws=0), progress=False)
        xyz_knn = model.replace(decoder=knn).decode(jax.random.key(200 + seed), latent)
        d_knn = pair_distances(xyz_knn, pairs)
        run, tic1s, counts = {"training_s": trained, "md_t1_latent_ps": md_latent_t1}, {}, {}

        def scored(label, xyz, **extra):  # a row of decoded trajectories, its TIC1 and folding per trajectory
            numbers, tic1s[label] = score(xyz, latent, md_ctx, train, frame_ps, lag,
                                          None if label == "knn_same_latent" else d_knn)
            counts[label] = folding_counts(xyz)
            total = counts[label].sum(0)
            assert np.isclose(total[0] / total[1], numbers["folded_fraction"]), "per-trajectory counts disagree"
            run[label] = {**numbers, **extra}

        scored("knn_same_latent", xyz_knn)
        if not args.memory_only:
            model.decode(jax.random.key(0), latent[:1, :8])  # compiled before the clock starts
            t0 = time.perf_counter()
            xyz = model.decode(jax.random.key(200 + seed), latent)
            run["decode_frames_per_s"] = xyz.shape[0] * xyz.shape[1] / (time.perf_counter() - t0)
            scored("decoder", xyz)
            if args.distill:  # the floor of a student's distance from its teacher: the teacher with other keys
                scored("decoder/other_keys", model.decode(jax.random.key(400 + seed), latent))
        for k in args.distill or []:  # the same trained decoder distilled, the same latent trajectories
            t0 = time.perf_counter()
            n_fit = int(0.9 * len(u_train))
            student = distill_decoder(jax.random.key(300 + seed), model.decoder, u_train[:n_fit], u_train[n_fit:],
                                      n_steps=k, iterations=args.distill_iterations, draws=args.distill_draws,
                                      progress=False)
            distilled_s = time.perf_counter() - t0
            fast = model.replace(decoder=student)
            fast.decode(jax.random.key(0), latent[:1, :8])  # compiled before the clock starts, as the teacher's
            t0 = time.perf_counter()
            xyz = fast.decode(jax.random.key(200 + seed), latent)
            fps = xyz.shape[0] * xyz.shape[1] / (time.perf_counter() - t0)
            scored(f"decoder/distilled={k}", xyz, distill_s=distilled_s, decode_frames_per_s=fps)
        for t0_start in args.template_times or []:  # the same field, its paths started at t0 from training frames
            started = template_start(jax.random.key(seed), model.decoder, train.xyz, u_train, t0=t0_start)
            scored(f"decoder/t0={t0_start:g}", model.replace(decoder=started).decode(jax.random.key(200 + seed),
                                                                                      latent))
        field = getattr(model.decoder.network, "field", model.decoder.network)  # a StateFlow's field, or the network
        for temperature in [] if args.memory_only else args.temperatures or []:  # the same paths, another T
            field.temperature = temperature
            scored(f"decoder@{temperature:g}", model.decode(jax.random.key(200 + seed), latent))
        for temperature, guidance in itertools.product([model.config.decoder.resolved().temperature,
                                                        *(args.temperatures or [])],
                                                       args.guidances or []):
            field.temperature, field.guidance = temperature, guidance
            scored(f"decoder@{temperature:g},w={guidance:g}", model.decode(jax.random.key(200 + seed), latent))
        for memory in args.noise_memories or []:  # the same field and latent trajectories, noise with memory
            remembering = model.with_noise_memory(memory if memory == "auto" else float(memory), [train])
            rho = remembering.decoder.noise_memory
            if memory == "auto":
                run["noise_memory_calibration"] = remembering.info["decoder"]["noise_memory_calibration"]
            for temperature in args.temperatures or [model.config.decoder.resolved().temperature]:
                field.temperature = temperature
                scored(f"decoder@{temperature:g},memory={memory}",
                       remembering.decode(jax.random.key(200 + seed), latent), noise_memory=rho)
        for label, errors in f_tic1_errors(tic1s, md_ctx).items():
            run[label].update(errors)
        for label, errors in folding_errors(counts).items():
            run[label].update(errors)
        runs[str(seed)] = run
        for label, row in run.items():
            if isinstance(row, dict):
                print(f"seed {seed} {label}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                                                           if isinstance(v, float)), flush=True)
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
