"""Simulated nanoseconds per wall-clock second: OpenMM molecular dynamics against LSS generation.

System: alanine dipeptide, in two MD protocols:

* **implicit solvent**, the protocol of the shipped data (``lss_jax.datasets``: Amber ff96, OBC2, HBond
  constraints, 4 amu hydrogens, ``LangevinMiddleIntegrator(300 K, 1/ps, 4 fs)``), on each requested OpenMM
  platform (default: ``CPU`` with all cores, and ``Reference``, which is faster for 22 atoms);
* **explicit solvent**, the class of MD the paper's speed-up refers to: Amber14 + TIP3P in a box padded by
  1 nm (712 atoms), PME with a 1 nm cutoff, HBond constraints, hydrogen mass repartitioning to 4 amu and a
  4 fs ``LangevinMiddleIntegrator`` at 300 K, on the ``CPU`` platform (``--explicit-platforms``: also ``CUDA`` on a
  GPU machine; the ratios use the fastest platform of each protocol).

After minimization, velocities and a warm-up, only ``simulation.step`` over ``--md-steps`` steps is timed,
without writing frames. Rate = steps x 4 fs / s.
* **LSS**: ``LSS(lag=5, encoder={"latent_dim": 2, "epochs": 2}, propagator={"epochs": 2}, decoder={"iterations": 200})``
  trained on the shipped ``train`` trajectory (2 ps frames, so one LSS step = 5 x 2 ps = 10 ps;
  :func:`lss_jax.benchmarking.throughput_model`). Throughput does not depend on how well the model is
  trained, so the training is short. Timed after
  a warm-up call of the same size (compilation excluded): ``LSS.generate`` returning decoded
  ``mdtraj.Trajectory`` frames (propagate + decode + trajectory assembly), and separately its parts:
  the latent rollout (``generate(..., latent_only=True)``, trajectory-steps/s) and decoding
  (``LSS.decode`` of those latent frames, frames/s), and generation with writing: the decoded frames saved
  as one XTC file, as ``lss-jax generate --out lss.xtc`` writes them, and generation into a directory of ``.npy``
  chunks, as ``lss-jax generate --out DIR`` writes them (rollout, decoding and writing chunk by chunk; the
  format for long runs). Rate = n_traj x n_steps x lag time / s.

The LSS is measured eight ways in the same run: its decoder as trained (the flow, 10 Heun steps), distilled into
one Euler step (``lss_jax.decoder.distill_decoder``, 200 iterations: throughput only), and a mean flow
(``decoder.kind = "meanflow"``, 200 iterations) in its default 2 steps and in 1, each on one XLA host device
and with the rollout and decoding on one host device per core (:func:`lss_jax.use_every_core`, called first).
The ratios LSS / MD use the fastest platform of each MD protocol and the fastest LSS with decoding and writing
(every variant's ratio is kept: ``lss_written_over_md_by_variant``; which decoders hold fidelity is measured
elsewhere, ``docs/decoder.md``). OpenMM is optional: without it (or with
``--no-md``) only the LSS part runs and the ratio is ``null``.

    python benchmarks/perf/md_vs_lss.py            # 1000 x 1000 LSS steps, 10 000 MD steps -> results/md_vs_lss-<backend>.json
    python benchmarks/perf/md_vs_lss.py --quick    # smaller model and sizes (< 1 min)
    python benchmarks/perf/md_vs_lss.py --no-md --n-traj 4096 --out /tmp/lss.json
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import lss_jax

N_DEVICES = lss_jax.use_every_core()  # before JAX starts: one host device per core

import jax  # noqa: E402
import numpy as np  # noqa: E402

from lss_jax import LSS  # noqa: E402
from lss_jax.benchmarking import (  # noqa: E402
    benchmark_parser,
    load_average,
    machine_facts,
    refit_decoder,
    throughput_model,
    write_results,
)
from lss_jax.datasets import alanine_dipeptide_files, load_alanine_dipeptide  # noqa: E402
from lss_jax.decoder import distill_decoder  # noqa: E402
from lss_jax.generation.simulate import generate_to_directory  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results"

MD_STEP_FS = 4.0


def _system(solvent: str):
    """``(topology, system, positions)`` of alanine dipeptide in implicit (shipped protocol) or explicit solvent."""
    from openmm import app, unit

    files = alanine_dipeptide_files()
    pdb = app.PDBFile(str(files["pdb"]))
    if solvent == "implicit":
        prmtop = app.AmberPrmtopFile(str(files["prmtop"]))
        system = prmtop.createSystem(implicitSolvent=app.OBC2, nonbondedMethod=app.NoCutoff, constraints=app.HBonds,
                                     hydrogenMass=4 * unit.amu)
        return prmtop.topology, system, pdb.positions
    ff = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(ff, model="tip3p", padding=1.0 * unit.nanometer)
    system = ff.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=1.0 * unit.nanometer,
                             constraints=app.HBonds, hydrogenMass=4 * unit.amu)
    return modeller.topology, system, modeller.positions


def bench_md(platform_name: str, n_steps: int, warmup_steps: int, solvent: str = "implicit") -> dict:
    """Time ``n_steps`` integration steps of one MD protocol on one OpenMM platform."""
    import openmm
    from openmm import app, unit

    topology, system, positions = _system(solvent)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, MD_STEP_FS * unit.femtoseconds)
    integrator.setRandomNumberSeed(1)
    plat = openmm.Platform.getPlatformByName(platform_name)
    properties = {"Threads": str(os.cpu_count())} if platform_name == "CPU" else {}
    simulation = app.Simulation(topology, system, integrator, plat, properties)
    simulation.context.setPositions(positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    simulation.step(warmup_steps)
    simulation.context.getState(getEnergy=True)  # synchronize before timing
    start = time.perf_counter()
    simulation.step(n_steps)
    simulation.context.getState(getEnergy=True)
    seconds = time.perf_counter() - start
    ns = n_steps * MD_STEP_FS * 1e-6
    return {
        "platform": platform_name,
        "solvent": solvent,
        "n_atoms": system.getNumParticles(),
        "properties": {k: plat.getPropertyValue(simulation.context, k) for k in plat.getPropertyNames()},
        "n_steps": n_steps,
        "warmup_steps": warmup_steps,
        "seconds": seconds,
        "steps_per_second": n_steps / seconds,
        "ns_per_second": ns / seconds,
        "ns_per_day": ns / seconds * 86400,
    }


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), out


def bench_lss(model: LSS, n_traj: int, n_steps: int, repeats: int, devices=None) -> dict:
    key = jax.random.key(0)
    lag_ps = model.lag_time
    sim_ns = n_traj * n_steps * lag_ps * 1e-3
    n_frames = n_traj * n_steps

    start = time.perf_counter()
    model.generate(key, n_traj, n_steps, progress=False, devices=devices)  # compiles rollout chunks and decode batches
    first = time.perf_counter() - start
    gen_s, traj = _median_time(lambda: model.generate(key, n_traj, n_steps, progress=False, devices=devices), repeats)
    if traj.n_frames != n_frames:
        raise RuntimeError(f"generate returned {traj.n_frames} frames, expected {n_frames}")
    roll_s, psi = _median_time(lambda: model.generate(key, n_traj, n_steps, latent_only=True, progress=False,
                                                      devices=devices), repeats)
    dec_s, xyz = _median_time(lambda: model.decode_unit(key, model.to_unit(psi), progress=False, devices=devices),
                              repeats)

    def generate_and_write():
        with tempfile.TemporaryDirectory() as tmp:
            model.generate(key, n_traj, n_steps, progress=False, devices=devices).save_xtc(str(Path(tmp) / "lss.xtc"))

    write_s, _ = _median_time(generate_and_write, repeats)

    def generate_into_directory():
        with tempfile.TemporaryDirectory() as tmp:
            generate_to_directory(key, model, Path(tmp) / "gen", n_traj, n_steps, devices=devices, progress=False)

    dir_s, _ = _median_time(generate_into_directory, repeats)
    return {
        "n_trajectories": n_traj,
        "n_steps": n_steps,
        "lag_time_ps": lag_ps,
        "simulated_ns": sim_ns,
        "decoded_atoms": int(traj.n_atoms),
        "first_call_seconds_including_compile": first,
        "generate_seconds": gen_s,
        "ns_per_second": sim_ns / gen_s,
        "frames_per_second": n_frames / gen_s,
        "rollout_seconds": roll_s,
        "rollout_latent_steps_per_second": n_frames / roll_s,
        "rollout_ns_per_second": sim_ns / roll_s,
        "decode_seconds": dec_s,
        "decode_frames_per_second": n_frames / dec_s,
        "decode_output_shape": list(np.shape(xyz)),
        "assembly_seconds_estimate": max(gen_s - roll_s - dec_s, 0.0),
        "generate_and_write_xtc_seconds": write_s,
        "written_ns_per_second": sim_ns / write_s,
        "generate_to_directory_seconds": dir_s,
        "written_directory_ns_per_second": sim_ns / dir_s,
        "shares_of_generate_and_write": {"rollout": roll_s / write_s, "decode": dec_s / write_s,
                                         "assembly": max(gen_s - roll_s - dec_s, 0.0) / write_s,
                                         "write_xtc": max(write_s - gen_s, 0.0) / write_s},
    }


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, quick="tiny model (lag 1 on a 5x strided trajectory), 200 x 200 LSS steps, "
                                            "2000 MD steps",
                              out="JSON path (default benchmarks/results/md_vs_lss-<backend>.json)")
    parser.add_argument("--n-traj", type=int, default=1000)
    parser.add_argument("--n-steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--md-steps", type=int, default=10_000, help="timed OpenMM steps (4 fs each)")
    parser.add_argument("--md-warmup", type=int, default=1000)
    parser.add_argument("--md-platforms", nargs="+", default=["CPU", "Reference"], help="implicit-solvent platforms")
    parser.add_argument("--explicit-steps", type=int, default=2000,
                        help="timed steps of the explicit-solvent run on each explicit platform (0: skip it)")
    parser.add_argument("--explicit-platforms", nargs="+", default=["CPU"],
                        help="explicit-solvent platforms (a GPU machine: CUDA CPU)")
    parser.add_argument("--no-md", action="store_true", help="skip the OpenMM part")
    parser.add_argument("--model", type=Path, default=None,
                        help="load this saved LSS directory if it exists, else train and save it there")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_traj, args.n_steps, args.repeats, args.md_steps, args.md_warmup = 200, 200, 1, 2000, 250
        args.explicit_steps = min(args.explicit_steps, 200)
    try:
        import mdtraj  # noqa: F401
    except ImportError:
        sys.exit("benchmarks/perf/md_vs_lss.py needs mdtraj (a dependency of lss_jax) for the LSS part: pip install mdtraj")
    load_start = load_average()

    md_rows, md_note = [], None
    if args.no_md:
        md_note = "skipped (--no-md)"
    else:
        try:
            import openmm  # noqa: F401 - its version goes into machine_facts
        except ImportError as err:
            md_note = f"OpenMM not available ({err}); install the md extra: pip install 'lss_jax[md]'"
    if md_note is None:
        runs = [(name, args.md_steps, "implicit") for name in args.md_platforms]
        if args.explicit_steps:
            runs += [(name, args.explicit_steps, "explicit") for name in args.explicit_platforms]
        for name, n_md, solvent in runs:
            try:
                row = bench_md(name, n_md, min(args.md_warmup, n_md), solvent)
            except Exception as err:  # noqa: BLE001 - a platform missing on this machine is not fatal
                print(f"MD {name}: failed ({type(err).__name__}: {err})", file=sys.stderr)
                md_rows.append({"platform": name, "error": f"{type(err).__name__}: {err}"})
                continue
            md_rows.append(row)
            print(f"MD  {solvent:<8} {name:<9} {row['n_atoms']:>4} atoms {row['steps_per_second']:>10.0f} steps/s  "
                  f"{row['ns_per_second']:.4f} ns/s  ({row['ns_per_day']:.0f} ns/day)", flush=True)
    else:
        print(f"MD: {md_note}", file=sys.stderr)

    model, train_info = throughput_model(quick=args.quick, model_dir=args.model)
    fitted = model.fetch_model()
    train = load_alanine_dipeptide("train", stride=5)
    u = model.to_unit(np.concatenate(model.encode([train])))
    cut = int(0.9 * len(u))
    distilled = fitted.replace(decoder=distill_decoder(jax.random.key(1), fitted.decoder, u[:cut], u[cut:], n_steps=1,
                                                       iterations=200, progress=False))
    mean_flow = refit_decoder(fitted, load_alanine_dipeptide("train", stride=train_info["train_stride"]),
                              kind="meanflow", iterations=200, progress=False)
    by_decoder = {"flow heun10": fitted, "distilled euler1": distilled,  # the same model with each decoder
                  "meanflow 2 steps": fitted.replace(decoder=mean_flow),
                  "meanflow 1 step": fitted.replace(decoder=mean_flow.replace(flow_steps=1))}
    variants = {}
    for name, variant, devices in ((f"{label}, {where}", model_, devices) for label, model_ in by_decoder.items()
                                   for where, devices in (("one device", jax.devices()[:1]),
                                                          ("every core", jax.devices()))):
        variants[name] = bench_lss(variant, args.n_traj, args.n_steps, args.repeats, devices)
        v = variants[name]
        print(f"LSS {name:30s} generate {v['n_trajectories']} x {v['n_steps']} steps (lag {v['lag_time_ps']:g} ps): "
              f"{v['generate_seconds']:.2f} s -> {v['ns_per_second']:.4g} ns/s; rollout "
              f"{v['rollout_latent_steps_per_second']:.3g} steps/s; decode {v['decode_frames_per_second']:.3g} "
              f"frames/s; written: xtc {v['written_ns_per_second']:.4g} ns/s, directory "
              f"{v['written_directory_ns_per_second']:.4g} ns/s", flush=True)
    best_name = max(variants, key=lambda k: variants[k]["written_ns_per_second"])
    lss = variants[best_name]

    ok = [r for r in md_rows if "ns_per_second" in r]
    fastest = {s: max((r for r in ok if r["solvent"] == s), key=lambda r: r["ns_per_second"], default=None)
               for s in ("implicit", "explicit")}
    best = fastest["implicit"]
    ratio = lss["ns_per_second"] / best["ns_per_second"] if best else None
    ratios = {s: {"md_platform": r["platform"], "md_ns_per_second": r["ns_per_second"],
                  "lss_written_over_md": lss["written_ns_per_second"] / r["ns_per_second"],
                  "lss_written_directory_over_md": lss["written_directory_ns_per_second"] / r["ns_per_second"],
                  "lss_generate_over_md": lss["ns_per_second"] / r["ns_per_second"],
                  "lss_rollout_over_md": lss["rollout_ns_per_second"] / r["ns_per_second"],
                  "lss_written_over_md_by_variant": {name: v["written_ns_per_second"] / r["ns_per_second"]
                                                     for name, v in variants.items()},
                  "lss_written_directory_over_md_by_variant": {
                      name: v["written_directory_ns_per_second"] / r["ns_per_second"] for name, v in variants.items()}}
              for s, r in fastest.items() if r is not None}
    print(f"\n{'':<36} {'ns/s':>12} " + " ".join(f"{'x ' + s + ' MD':>14}" for s in ratios))
    for name, rate in [*((f"MD {r['solvent']} {r['platform']}", r["ns_per_second"]) for r in ok),
                       ("LSS generate + decode + write xtc", lss["written_ns_per_second"]),
                       ("LSS generate_to_directory (npy chunks)", lss["written_directory_ns_per_second"]),
                       ("LSS generate + decode", lss["ns_per_second"]), ("LSS rollout only", lss["rollout_ns_per_second"])]:
        print(f"{name:<36} {rate:>12.4g} " + " ".join(f"{rate / v['md_ns_per_second']:>14.3g}" for v in ratios.values()))

    result = {
        "benchmark": "md_vs_lss",
        "system": "alanine dipeptide; MD: Amber ff96 + OBC2 implicit solvent (lss_jax.datasets protocol) and Amber14 + "
                  "TIP3P explicit solvent (1 nm padding, PME, HMR, 4 fs), 300 K",
        "ratios_by_md_protocol": ratios,
        "md": {"available": md_note is None, "note": md_note, "step_fs": MD_STEP_FS, "results": md_rows,
               "timed": "simulation.step only (after minimization, velocities, warm-up); no frame output"},
        "lss": lss,
        "lss_variant": best_name,
        "lss_variants": variants,
        "host_devices": N_DEVICES,
        "lss_model": {**train_info,
                      "note": "trained briefly: throughput does not depend on training quality; the generated "
                              "dynamics of this model are not meant to be accurate"},
        "ratio_lss_over_md": ratio,
        "ratio_reference_platform": best["platform"] if best else None,
        "issue_target": {"criterion": "LSS ns/s (decoded and written) >= 1e6 x OpenMM ns/s, explicit solvent (the "
                                      "paper's comparison; implicit solvent beside it)",
                         "ratio": ratios.get("explicit", {}).get("lss_written_over_md"),
                         "ratio_implicit": ratios.get("implicit", {}).get("lss_written_over_md"),
                         "met": None if "explicit" not in ratios else bool(ratios["explicit"]["lss_written_over_md"] >= 1e6)},
        "settings": {"quick": args.quick, "repeats": args.repeats},
        "machine": machine_facts(load_average_start=load_start, packages=["openmm"] if md_note is None else []),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_results(args.out or RESULTS / f"md_vs_lss-{jax.default_backend()}.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
