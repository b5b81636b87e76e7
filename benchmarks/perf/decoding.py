"""Decoding throughput: every sampler of the decoders, on one core's device and on every core, in one run.

Generation is mostly decoding, so this is the figure that sets lss_jax's end-to-end speed. For each system the
decoders are trained briefly on the shipped training data (throughput does not depend on how well a network is
trained; the fidelity of each sampler is measured elsewhere: ``benchmarks/studies/ala2_sweep.py --samplers``,
``tests/test_decoder_fidelity.py``) and timed with ``LSSModel.decode_unit`` on the latent points of the training
frames (so redraws happen as often as in a real run), after a warm-up call (compilation excluded):

* **alanine dipeptide** (10 heavy atoms, internal coordinates, structural states): the flow with 10 Heun steps
  (20 network evaluations per frame: the default), 5 Heun steps, 2 midpoint steps, and the
  flow distilled into 1 and 2 Euler steps (``decoder.distill_steps``), and the mean flow (``decoder.kind =
  "meanflow"``) in its default 2 steps and in 1;
* **Trp-cage** (20 Cα): retrieval (``knn``, the yardstick); with ``--chain`` also the protocol's decoder, the chain
  flow on native contact maps (``trp_cage.DECODER``) with 10 Heun steps, and distilled into 1 Euler step (slow to
  train and to distil on a CPU: its teacher decodes about 3 x 10^2 frames/s; the distillation draws one teacher coupling
  per training frame, as its fidelity does not matter here).

Each is timed on the first host device alone and with its blocks dispatched in turn to one host device per core
(:func:`lss_jax.use_every_core`, which this script calls first). Ratios are against the system's default
(alanine dipeptide: flow, 10 Heun steps, one device; Trp-cage: the protocol's chain decoder with ``--chain``, else
knn, one device).

    python benchmarks/perf/decoding.py          # ~10 min on 2 CPU cores -> results/decoding-<backend>.json
    python benchmarks/perf/decoding.py --chain  # also Trp-cage's chain decoder: ~10 min (2026-12-07)
    python benchmarks/perf/decoding.py --quick  # fewer frames
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lss_jax

N_DEVICES = lss_jax.use_every_core()  # before JAX starts its backends

import jax  # noqa: E402
import numpy as np  # noqa: E402

from lss_jax.benchmarking import benchmark_parser, load_average, machine_facts, write_results  # noqa: E402
from lss_jax.data.pairs import split_trajectories  # noqa: E402
from lss_jax.decoder import DecoderConfig, default_decode_block, distill_decoder, fit_decoder  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results"


def rate(model, unit, devices, repeats: int, block: int | None = None) -> float:
    """Frames/s of ``decode_unit`` in blocks of ``block`` rows (default: the backend's,
    :func:`lss_jax.decoder.default_decode_block`), median of ``repeats`` after a warm-up call of the same size."""
    model.decode_unit(jax.random.key(0), unit, progress=False, devices=devices, chunk=block)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.decode_unit(jax.random.key(0), unit, progress=False, devices=devices, chunk=block)
        times.append(time.perf_counter() - start)
    return len(unit) / float(np.median(times))


def system_rows(name, model, traj, variants, n_frames, repeats, blocks=()) -> dict:
    """Train each decoder variant on the model's own latent points of ``traj`` and time it."""
    u = [model.to_unit(p) for p in model.encode([traj])]
    u_train, u_val = (np.concatenate(part) for part in split_trajectories(u, 0.1))
    unit = np.resize(np.concatenate(u), (n_frames, model.latent_dim)).astype(np.float32)
    base, rows, teachers = model.fetch_model(), {}, {}
    atoms = traj.atom_slice(base.atom_indices)
    for label, config, distill, frames in variants:
        start = time.perf_counter()
        teacher_key = (config.kind, config.coordinates)
        if teacher_key not in teachers:
            teachers[teacher_key], _ = fit_decoder(jax.random.key(0), atoms.xyz, np.concatenate(u),
                                                   topology=atoms.topology, reference=atoms.xyz[0],
                                                   config=config, progress=False)
        decoder = teachers[teacher_key].replace(flow_steps=config.flow_steps, flow_solver=config.flow_solver)
        if distill:
            decoder = distill_decoder(jax.random.key(1), decoder, u_train, u_val, n_steps=distill, iterations=200,
                                      draws=1, progress=False)
        variant = base.replace(decoder=decoder)
        frames = unit[:frames or n_frames]
        row = {"decoder": config.kind, "network_evaluations_per_frame": evaluations(decoder),
               "frames": len(frames), "make_seconds": time.perf_counter() - start}
        row["frames_per_second_one_device"] = rate(variant, frames, jax.devices()[:1], repeats)
        # one device (a GPU): "every core" is the same program on the same device, so it is not timed twice
        row["frames_per_second_every_core"] = (rate(variant, frames, jax.devices(), repeats) if len(jax.devices()) > 1
                                               else row["frames_per_second_one_device"])
        if blocks:
            row["frames_per_second_by_block"] = {str(b): rate(variant, frames, jax.devices()[:1], repeats, b)
                                                 for b in blocks if b <= len(frames)}
            print(f"{name:10s} {label:24s} frames/s by block: " + ", ".join(
                f"{b} {r:,.0f}" for b, r in row["frames_per_second_by_block"].items()), flush=True)
        rows[label] = row
        print(f"{name:10s} {label:24s} {row['network_evaluations_per_frame']:>3} evaluations/frame "
              f"{row['frames_per_second_one_device']:>11,.0f} frames/s one device "
              f"{row['frames_per_second_every_core']:>11,.0f} every core ({N_DEVICES})", flush=True)
    return rows


def evaluations(decoder) -> int:
    from lss_jax.decoder.flow import SOLVERS

    if decoder.kind in ("knn", "wgan"):
        return 1
    return decoder.flow_steps * (1 if decoder.kind == "meanflow" else SOLVERS[decoder.flow_solver])


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="fewer frames",
                              out="JSON path (default benchmarks/results/decoding-<backend>.json)")
    parser.add_argument("--frames", type=int, default=131_072, help="latent points decoded per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--blocks", type=int, nargs="+", default=[],
                        help="also time one device with the rows decoded in blocks of each of these sizes")
    parser.add_argument("--chain", action="store_true", help="also the chain decoder of Trp-cage, as teacher and distilled")
    args = parser.parse_args(argv)
    load_start = load_average()
    frames = 16_384 if args.quick else args.frames

    from lss_jax import LSS
    from lss_jax.datasets import load_alanine_dipeptide
    from lss_jax.systems.trp_cage import load_trp_cage, lss_config

    flow = DecoderConfig(iterations=200)
    ala2 = load_alanine_dipeptide("train", stride=2)
    ala2_model = LSS(lag=5, encoder={"latent_dim": 2, "epochs": 2}, propagator={"epochs": 2},
                     decoder={"kind": "knn"}).fit(ala2, progress=False)
    ala2_variants = [("flow heun10 (default)", flow, 0, None),
                     ("flow heun5", DecoderConfig(iterations=200, flow_steps=5), 0, None),
                     ("flow midpoint2", DecoderConfig(iterations=200, flow_steps=2, flow_solver="midpoint"), 0, None),
                     ("flow distilled euler1", flow, 1, None),
                     ("flow distilled euler2", flow, 2, None),
                     ("meanflow 2 steps (its default)", DecoderConfig(kind="meanflow", iterations=200), 0, None),
                     ("meanflow 1 step", DecoderConfig(kind="meanflow", iterations=200, flow_steps=1), 0, None)]
    trp = load_trp_cage("train", stride=2)
    trp_model = LSS(config=lss_config(encoder={"epochs": 2}, propagator={"epochs": 2},
                                      decoder={"kind": "knn"})).fit(trp, progress=False)
    chain = lss_config(decoder={"epochs": None, "iterations": 50}).decoder  # the protocol's, briefly trained
    cpu = jax.default_backend() == "cpu"
    trp_variants = [("knn (retrieval)", DecoderConfig(kind="knn"), 0, None),
                    *([("chain heun10 (protocol default)", chain, 0, 4096 if cpu else None),
                       ("chain distilled euler1", chain, 1, min(frames, 32_768))] if args.chain else [])]
    systems = {"alanine_dipeptide": system_rows("ala2", ala2_model, ala2, ala2_variants, frames, args.repeats,
                                                      args.blocks),
               "trp_cage": system_rows("trp-cage", trp_model, trp, trp_variants, frames, args.repeats,
                                           args.blocks)}
    baselines = {"alanine_dipeptide": "flow heun10 (default)",
                 "trp_cage": "chain heun10 (protocol default)" if args.chain else "knn (retrieval)"}
    for system, rows in systems.items():
        base = rows[baselines[system]]["frames_per_second_one_device"]
        for label, row in rows.items():
            row["speedup_one_device"] = row["frames_per_second_one_device"] / base
            row["speedup_every_core"] = row["frames_per_second_every_core"] / base
            print(f"{system:18s} {label:26s} x{row['speedup_one_device']:6.2f} one device  "
                  f"x{row['speedup_every_core']:6.2f} every core")
    write_results(args.out or RESULTS / f"decoding-{jax.default_backend()}.json", {
        "benchmark": "decoding", "host_devices": N_DEVICES, "baselines": baselines, "systems": systems,
        "settings": {"frames": frames, "repeats": args.repeats, "quick": args.quick, "blocks": args.blocks,
                     "default_block": default_decode_block(),
                     "training": "brief (200 decoder iterations, 50 for the chain; distillation 200 iterations): "
                                 "throughput only"},
        "machine": machine_facts(load_average_start=load_start)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
