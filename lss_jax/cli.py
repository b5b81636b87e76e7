"""The ``lss-jax`` command line."""

from __future__ import annotations

import argparse
import sys
import time

EXAMPLES = """examples:
  lss-jax demo --out runs/demo                      # alanine dipeptide: train, generate, validate (built-in data)
  lss-jax four-well --out runs/four-well            # the paper's four-well validation (~2.5 min on 2 CPU cores)
  lss-jax four-well --out runs/fw-quick --quick     # smoke run, < 1 min
  lss-jax train --traj md1.xtc md2.xtc --top system.pdb --lag 5 --out model/
  lss-jax generate --model model/ --n-traj 100 --n-steps 1000 --seed 1 --out lss.xtc
  lss-jax report --model model/ --md independent.xtc --lss lss.xtc --top system.pdb --out report/
  lss-jax lagscan --traj md1.xtc --top system.pdb --lags 1 2 5 10 20 --out its/
"""


CONFIG_HELP = (
    "TOML file whose keys are this command's long options (e.g. n_traj = 100); options given on the command "
    "line win. The resolved options are written next to the outputs as lss-jax-COMMAND.toml."
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lss-jax",
        description="Molecular latent space simulators (Sidky, Chen & Ferguson 2020) in JAX.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command")

    fw = sub.add_parser(
        "four-well",
        help="the paper's four-well validation against the exact Smoluchowski reference",
        description=(
            "Brownian dynamics in the four-well potential, an exact reference from the discretized "
            "Smoluchowski generator, an MDN propagator, >= 1000 generated trajectories, and a "
            "comparison (free energy, implied timescales, transition density). Writes metrics.json, "
            "bd_trajectory.npy, lss_trajectories.npy, profiles.npz and PNG figures to --out."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fw.add_argument("--out", required=True, help="output directory (created if missing)")
    fw.add_argument("--quick", action="store_true", help="small settings for a smoke run (<= 2 minutes on 2 cores)")
    fw.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    fw.add_argument("--n-trajectories", type=_positive_int, help="generated trajectories (default 1024)")
    fw.add_argument("--n-steps", type=_positive_int, help="LSS steps per trajectory (default: training length in τ)")
    fw.add_argument("--no-progress", action="store_true", help="hide progress bars")
    fw.add_argument("--config", help=CONFIG_HELP)

    def sub_parser(name, help_, description):
        return sub.add_parser(name, help=help_, description=description, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    tr = sub_parser("train", "train an LSS (encoder, propagator, decoder) on MD trajectories",
                    "Featurize the trajectories, train the SRV encoder, the MDN propagator and the cWGAN-GP "
                    "decoder, and save the model directory (format documented in lss_jax.lss).")
    tr.add_argument("--traj", nargs="+", required=True, help="trajectory files (any mdtraj format)")
    tr.add_argument("--top", help="topology file (PDB, prmtop, ...), needed for xtc/dcd/...")
    tr.add_argument("--lag", type=_positive_int, required=True, help="lag in frames")
    tr.add_argument("--out", required=True, help="model directory to write")
    tr.add_argument("--config", help=CONFIG_HELP + " Other keys are lss_jax.LSSConfig fields.")
    tr.add_argument("--latent-dim", type=_positive_int, help="latent dimension (default: eigenvalue gap)")
    tr.add_argument("--stride", type=_positive_int, default=1, help="load every n-th frame (the lag counts strided frames)")
    tr.add_argument("--seed", type=int, default=None, help="PRNG seed (default 0 or the config's)")
    tr.add_argument("--no-progress", action="store_true", help="hide progress bars")
    tr.add_argument("--checkpoint-every", type=_positive_int, default=1,
                    help="save the training state to OUT.checkpoints/ every N epochs (decoder: N x 250 iterations); "
                         "removed once the model is saved (default 1)")
    tr.add_argument("--resume", action="store_true",
                    help="continue an interrupted run from OUT.checkpoints/ (same data and settings); the result is "
                         "the same as an uninterrupted run")

    ge = sub_parser("generate", "generate trajectories with a trained LSS",
                    "Roll out latent trajectories and decode them chunk by chunk (memory is set by the chunk, not "
                    "the trajectory length). OUT with a trajectory extension (.xtc, .dcd, .h5, .nc, .trr, ...) gets "
                    "all trajectories in one file, trajectory-major (trajectory b is frames b*n .. (b+1)*n-1), plus "
                    "OUT's stem + '.pdb' (decoded atoms) and + '.latent.npy' ([n_traj, n_frames, latent_dim]). OUT "
                    "without an extension is a directory of chunk files (format in lss_jax.simulate; read it with "
                    "lss_jax.simulate.load_generated), for runs larger than memory. An interrupted run continues "
                    "where it stopped when rerun with the same arguments, with the same result.")
    ge.add_argument("--model", required=True, help="model directory from `lss-jax train`")
    ge.add_argument("--n-traj", type=_positive_int, required=True, help="number of trajectories")
    ge.add_argument("--n-steps", type=_positive_int, required=True, help="propagator steps (lags) per trajectory")
    ge.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    ge.add_argument("--out", required=True,
                    help="output file (.xtc, .dcd, .h5, .nc, .trr, ...; .npy with --latent-only) or directory (no extension)")
    ge.add_argument("--save-every", type=_positive_int, default=1, help="keep every n-th step")
    ge.add_argument("--latent-only", action="store_true", help="write only the latent rollout")
    ge.add_argument("--chunk-steps", type=_positive_int,
                    help="steps per chunk (default: about 256 MB of output per chunk; results do not depend on it)")
    ge.add_argument("--precision", choices=("float32", "tf32", "bfloat16"), default="float32",
                    help="matmul precision of both networks (default float32; tf32/bfloat16 for accelerators)")
    ge.add_argument("--devices", type=_positive_int,
                    help="shard the trajectories over this many local devices (default: all of jax.local_devices())")
    ge.add_argument("--distributed", action="store_true",
                    help="multi-host: call jax.distributed.initialize() and generate this process's share of the "
                         "trajectories into OUT/process-PPP/ (OUT must be a directory)")
    ge.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ge.add_argument("--config", help=CONFIG_HELP)

    rp = sub_parser("report", "validate generated trajectories against independent MD",
                    "Free energies, implied timescales, structure quality, novelty and TICA, as metrics.json "
                    "plus PNG figures in --out.")
    rp.add_argument("--model", required=True, help="model directory")
    rp.add_argument("--md", nargs="+", required=True, help="independent MD trajectories (training topology)")
    rp.add_argument("--lss", nargs="+", required=True, help="decoded LSS trajectories from `lss-jax generate`")
    rp.add_argument("--top", help="topology of the MD trajectories")
    rp.add_argument("--train", nargs="+", help="training trajectories, for the novelty check")
    rp.add_argument("--out", required=True, help="report directory")
    rp.add_argument("--seed", type=int, default=0, help="seed of the frame subsampling (default 0)")
    rp.add_argument("--config", help=CONFIG_HELP)

    ls = sub_parser("lagscan", "implied timescales of SRVs trained at several lags, to choose the lag",
                    "Train one SRV encoder per lag and plot its implied timescales against the lag (its.png, its.json "
                    "in --out). Pick the shortest lag from which the slow timescales stay flat.")
    ls.add_argument("--traj", nargs="+", required=True, help="trajectory files")
    ls.add_argument("--top", help="topology file")
    ls.add_argument("--lags", type=_positive_int, nargs="+", required=True, help="lags in frames")
    ls.add_argument("--n-outputs", type=_positive_int, default=3, help="eigenfunctions per SRV (default 3)")
    ls.add_argument("--epochs", type=_positive_int, default=30, help="maximum epochs per SRV (default 30)")
    ls.add_argument("--stride", type=_positive_int, default=1, help="load every n-th frame")
    ls.add_argument("--seed", type=int, default=0, help="PRNG seed")
    ls.add_argument("--out", required=True, help="output directory")
    ls.add_argument("--config", help=CONFIG_HELP)

    ad = sub_parser("adapt", "adaptive sampling: pick where to run MD next, run it, retrain (N rounds)",
                    "Score the MD frames with the model (least counts: MD density, or with --beta 1 the LSS stationary "
                    "density over the MD density; plus the ensemble's uncertainty if the model has one; rule in "
                    "lss_jax.adaptive), write the K best distinct frames as "
                    "PDBs, and with --prmtop or --system-xml (needs the md extra: OpenMM) run short MD from each, "
                    "append it and retrain, for --rounds rounds. Rerunning continues after the last complete round.")
    ad.add_argument("--model", required=True, help="trained model directory (its config is used for retraining)")
    ad.add_argument("--traj", nargs="+", required=True, help="MD gathered so far (full atoms)")
    ad.add_argument("--top", help="topology of --traj")
    ad.add_argument("--n-seeds", type=_positive_int, required=True, help="seeds (new MD trajectories) per round")
    ad.add_argument("--rounds", type=_positive_int, default=1, help="rounds (default 1)")
    ad.add_argument("--beta", type=float, default=0.0,
                    help="target density pi_LSS**beta of the acquisition: 0 = even coverage of the explored latent "
                         "space (least counts, default), 1 = the LSS's equilibrium density")
    ad.add_argument("--md-frames", type=_positive_int, default=100, help="frames per new MD trajectory (default 100)")
    ad.add_argument("--prmtop", help="Amber prmtop of the system (OBC2 implicit solvent protocol, see lss_jax.md)")
    ad.add_argument("--system-xml", help="serialized OpenMM System XML (used as is)")
    ad.add_argument("--pdb", help="PDB matching the system (default --top)")
    ad.add_argument("--platform", default="Reference", help="OpenMM platform (default Reference)")
    ad.add_argument("--seed", type=int, default=0, help="PRNG and MD seed")
    ad.add_argument("--out", required=True, help="output directory of the rounds")
    ad.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ad.add_argument("--config", help=CONFIG_HELP)

    de = sub_parser("demo", "alanine dipeptide end to end on the built-in data",
                    "Train on the shipped 50 ns trajectory (seed 1), generate, and validate against the shipped "
                    "independent 50 ns trajectory (seed 2).")
    de.add_argument("--out", required=True, help="output directory")
    de.add_argument("--quick", action="store_true", help="small settings for a smoke run")
    de.add_argument("--seed", type=int, default=0, help="PRNG seed")
    de.add_argument("--no-progress", action="store_true", help="hide progress bars")
    de.add_argument("--config", help=CONFIG_HELP)

    af = sub_parser("adapt-four-well", "adaptive sampling vs plain MD continuation on the four-well potential",
                    "Start from a BD run that saw only the two left wells; each round trains an MDN ensemble, seeds "
                    "short BD runs where the data are thin and the kinetics uncertain (the rule of lss-jax adapt), and scores an LSS against the "
                    "exact free energy; plain continuation of the first run with the same BD steps is the baseline "
                    "(lss_jax.pipelines.adaptive). Writes metrics.json, trajectories.npz and adaptive_four_well.png "
                    "to --out.")
    af.add_argument("--out", required=True, help="output directory (created if missing)")
    af.add_argument("--quick", action="store_true", help="tiny settings for a smoke run (about 1 minute on 2 cores)")
    af.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    af.add_argument("--rounds", type=int, help="adaptive rounds (default 12; --quick: 1)")
    af.add_argument("--beta", type=float, help="target density exponent of the acquisition rule (default 0, least "
                                               "counts; 1: the LSS's equilibrium density; see lss-jax adapt)")
    af.add_argument("--no-progress", action="store_true", help="hide progress bars")
    af.add_argument("--config", help=CONFIG_HELP)
    parser.subcommands = sub.choices
    return parser


def _four_well(args) -> int:
    from lss_jax.pipelines.four_well import FourWellConfig, run_four_well

    overrides = {"seed": args.seed}
    if args.n_trajectories:
        overrides["n_trajectories"] = args.n_trajectories
    if args.n_steps:
        overrides["n_lss_steps"] = args.n_steps
    config = FourWellConfig.quick(**overrides) if args.quick else FourWellConfig(**overrides)
    start = time.perf_counter()
    m = run_four_well(config, args.out, progress=not args.no_progress)
    ts = m["implied_timescales"]
    fmt = lambda v: ", ".join(f"{t:.4g}" for t in v)  # noqa: E731
    print(
        "\nfour-well validation"
        f"\n  free energy RMSE (LSS vs exact)  {m['free_energy_rmse_kT']:.3f} kT   (BD: {m['free_energy_rmse_kT_bd']:.3f} kT)"
        f"\n    learned chain, no sampling      {m['free_energy_rmse_kT_lss_exact']:.3f} kT   (transition matrix)"
        f"\n  implied timescales exact          {fmt(ts['exact'])}"
        f"\n                     exact MSM(τ)   {fmt(ts['exact_msm'])}"
        f"\n                     BD             {fmt(ts['bd'])}"
        f"\n                     LSS            {fmt(ts['lss'])}"
        f"\n                     LSS, exact     {fmt(ts['lss_exact'])}"
        f"\n  t1 relative error                 {m['t1_relative_error']:.1%}"
        f"\n  transition density L1             {m['transition_density_l1']:.3f}"
        f"\n  generated                         {m['n_trajectories_generated']} x {m['n_lss_steps_per_trajectory']:,} steps"
        f"\n  wall time                         {time.perf_counter() - start:.1f} s"
        f"\n  outputs                           {args.out}/metrics.json and *.png"
    )
    return 0


def _adapt_four_well(args) -> int:
    from lss_jax.pipelines.adaptive import AdaptiveConfig, run_adaptive_four_well

    overrides = {"seed": args.seed}
    if args.rounds is not None:
        if args.rounds < 0:
            raise ValueError(f"--rounds must be >= 0, got {args.rounds}.")
        overrides["n_rounds"] = args.rounds
    if args.beta is not None:
        overrides["beta"] = args.beta
    config = AdaptiveConfig.quick(**overrides) if args.quick else AdaptiveConfig(**overrides)
    start = time.perf_counter()
    m = run_adaptive_four_well(config, args.out, progress=not args.no_progress)
    fmt = lambda n: "not reached" if n is None else f"{n:,} steps"  # noqa: E731
    reached, ratio = m["steps_to_target"], m["steps_ratio_plain_over_adaptive"]
    print(
        "\nadaptive sampling, four-well"
        f"\n  initial BD run                  {m['initial']['n_steps']:,} steps, wells {m['initial']['wells_visited']}"
        f"\n  final RMSE  adaptive            {m['adaptive']['rmse'][-1]:.3f} kT at {m['adaptive']['md_steps'][-1]:,} steps"
        f"\n              plain               {m['plain']['rmse'][-1]:.3f} kT at {m['plain']['md_steps'][-1]:,} steps"
        f"\n  steps to <= {m['target_rmse_kT']} kT adaptive      {fmt(reached['adaptive'])}"
        f"\n                       plain         {fmt(reached['plain'])}"
        f"\n  ratio plain / adaptive          {'n/a' if ratio is None else f'{ratio:.2f}'}"
        f"\n  wall time                       {time.perf_counter() - start:.1f} s"
        f"\n  outputs                         {args.out}/metrics.json and adaptive_four_well.png"
    )
    return 0


def _load_config(path) -> dict:
    import tomllib
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ValueError(f"config {p} is a directory; give a TOML file (e.g. one written as lss-jax-COMMAND.toml).")
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}; check the --config path.")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config file {p} is not valid TOML ({err}); write one `key = value` per line, "
                         'strings in quotes (e.g. top = "system.pdb").') from err
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {p} is not UTF-8 text; give a TOML file.") from err


def _train(args) -> int:
    from pathlib import Path

    from lss_jax.data.featurize import load_trajectories
    from lss_jax.lss import LSS, LSSConfig

    out = Path(args.out)
    if not out.parent.exists():
        raise FileNotFoundError(f"the parent directory of --out ({out.parent}) does not exist; create it first.")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; the model is a directory: give a new path.")
    data = dict(args.lss_config)
    data["lag"] = args.lag
    if args.latent_dim:
        data["latent_dim"] = args.latent_dim
    if args.seed is not None:
        data["seed"] = args.seed
    try:
        config = LSSConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        where = f" in config file {args.config}" if args.config else ""
        raise ValueError(f"invalid configuration{where}: {err}") from err
    trajs = load_trajectories(args.traj, args.top, stride=args.stride)
    lengths = [len(t) for t in trajs]
    if max(lengths) <= config.lag + 1:
        raise ValueError(f"--lag {config.lag} is not shorter than the trajectories (longest: {max(lengths)} frames after "
                         f"--stride {args.stride}); use a shorter --lag or longer trajectories.")
    for path, n in zip(args.traj, lengths):
        if n <= config.lag:
            raise ValueError(f"{path} has {n} frames (after --stride {args.stride}), not more than --lag {config.lag}, "
                             "so it gives no lagged pair; drop it or use a shorter --lag.")
    start = time.perf_counter()
    checkpoints = out.parent / f"{out.name}.checkpoints"
    if args.resume and not checkpoints.is_dir():
        raise FileNotFoundError(f"--resume: no checkpoints at {checkpoints}; run without --resume to start training.")
    model = LSS(config=config).fit(trajs, progress=not args.no_progress, checkpoint_dir=checkpoints,
                                   resume=args.resume, checkpoint_every=args.checkpoint_every)
    model.save(out)
    import shutil

    shutil.rmtree(checkpoints, ignore_errors=True)
    info = model.info
    enc, dec = info["encoder"], info["decoder"]
    ts = ", ".join(f"{t:.3g}" for t in info["srv_timescales_ps"])
    print(
        f"\ntrained LSS on {info['n_frames']:,} frames from {info['n_trajectories']} trajectories"
        f"\n  lag                 {config.lag} frames = {info['lag_time_ps']:g} (trajectory time units, ps)"
        f"\n  SRV timescales      {ts}"
        f"\n  latent dimension    {info['latent_dim']}"
        f"\n  encoder VAMP-2      {enc['last_epoch_train_batches_vamp2']:.3f} on training minibatches (train-mode batch "
        f"norm), {enc['train_vamp2_eval_mode']:.3f} on all training pairs (eval mode), {enc['best_val_vamp2']:.3f} on "
        f"validation\n                      (the first gap is batch norm and minibatch estimates, the second is "
        f"generalization to unseen data)"
        f"\n  decoder             {dec['kind']} on {dec['coordinates']} coordinates, {dec['epochs']} epochs in "
        f"{dec['seconds']:.0f} s, validation loss {dec['best_val_loss']:.4g}"
        f"\n  wall time           {time.perf_counter() - start:.1f} s"
        f"\n  model               {out}"
    )
    return 0


def _write_generated(traj, latent, out):
    """Write decoded frames to ``out``, the decoded atoms' PDB and ``<stem>.latent.npy`` next to it."""
    from pathlib import Path

    import numpy as np

    from lss_jax import _io

    out = Path(out)
    stem = out.with_suffix("")
    with _io.atomic_path(out) as tmp:
        traj.save(str(tmp))
    with _io.atomic_path(stem.with_suffix(".pdb")) as tmp:
        traj[0].save_pdb(str(tmp))
    _io.save_npy(Path(f"{stem}.latent.npy"), np.asarray(latent, np.float32))
    return [out, stem.with_suffix(".pdb"), Path(f"{stem}.latent.npy")]


def _generate(args) -> int:
    from pathlib import Path

    import jax

    from lss_jax.lss import LSS
    from lss_jax.simulate import check_output_format, export_trajectory, generate_to_directory, remove_generation

    out = Path(args.out)
    if not out.parent.exists():
        raise FileNotFoundError(f"the directory of --out ({out.parent}) does not exist; create it first.")
    to_directory = out.suffix == "" or out.is_dir()
    if args.latent_only and not to_directory and out.suffix != ".npy":
        raise ValueError(f"--latent-only writes a .npy file or a directory; got --out {out}.")
    if args.distributed and not to_directory:
        raise ValueError("--distributed writes one directory per process: give --out a directory (no extension).")
    if not to_directory:
        check_output_format(out)
    model = LSS.load(args.model)
    process_index, process_count = 0, 1
    if args.distributed:
        jax.distributed.initialize()  # cluster settings from the environment (SLURM, Open MPI, ...)
        process_index, process_count = jax.process_index(), jax.process_count()
    devices = jax.local_devices()
    if args.devices:
        if args.devices > len(devices):
            raise ValueError(f"--devices {args.devices} but this process has {len(devices)} device(s).")
        devices = devices[: args.devices]
    work = out if to_directory else out.parent / f".{out.name}.parts"
    summary = generate_to_directory(
        model, work, jax.random.key(args.seed), args.n_traj, args.n_steps, save_every=args.save_every,
        chunk_steps=args.chunk_steps, latent_only=args.latent_only, precision=args.precision, devices=devices,
        process_index=process_index, process_count=process_count, progress=not args.no_progress,
    )
    written = [summary.path]
    if not to_directory:
        written = export_trajectory(work, out, progress=not args.no_progress)
        remove_generation(work)
    seconds = time.perf_counter() - args.start_time
    n = summary.n_trajectories * summary.n_frames
    resumed = f" (continued after {summary.resumed_chunks} complete chunk(s) on disk)" if summary.resumed_chunks else ""
    print(
        f"\ngenerated {summary.n_trajectories} trajectories x {summary.n_frames:,} frames = {n:,} frames{resumed}"
        f"\n  simulated time   {summary.simulated_time:,.0f} ps ({summary.simulated_time / 1000:,.2f} ns) in total"
        f"\n  wall time        {seconds:.1f} s ({n / max(summary.seconds, 1e-9):,.0f} frames/s generating)"
        f"\n  devices          {len(devices)} x {devices[0].platform}"
        + (f", process {process_index + 1} of {process_count}" if process_count > 1 else "")
        + f"\n  wrote            {', '.join(str(w) for w in written)}"
    )
    return 0


def _report(args) -> int:
    from pathlib import Path

    import mdtraj as md
    import numpy as np

    from lss_jax.analysis.molecular import validate
    from lss_jax.data.featurize import load_trajectories
    from lss_jax.lss import LSS

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; the report is a directory: give a new path.")
    model = LSS.load(args.model)
    n_atoms = model.topology_full.n_atoms

    def check_atoms(option, paths, trajs):
        for path, t in zip(paths, trajs):
            if t.n_atoms != n_atoms:
                raise ValueError(f"{option} {path} has {t.n_atoms} atoms but the model was trained on {n_atoms}; give "
                                 "trajectories of the training system (and its --top).")

    md_trajs = load_trajectories(args.md, args.top)
    check_atoms("--md", args.md, md_trajs)
    top = Path(args.model) / "topology.pdb"
    lss_parts, latents = [], []
    for f in args.lss:
        if Path(f).is_dir():  # a chunked generation directory
            from lss_jax.simulate import load_generated

            gen = load_generated(f)
            lss_parts.append(gen.trajectory())
            latents.append(np.asarray(gen.latent))
            continue
        lat = Path(f"{Path(f).with_suffix('')}.latent.npy")
        if not lat.is_file():
            raise FileNotFoundError(f"{lat} not found: report needs the latent file that `lss-jax generate` writes next to {f}.")
        part = load_trajectories([f], top)[0]
        try:
            latent = np.load(lat)
        except Exception as err:
            raise ValueError(f"could not read {lat} ({type(err).__name__}); rerun `lss-jax generate` to rewrite it.") from err
        if latent.ndim != 3 or latent.shape[0] * latent.shape[1] != part.n_frames or latent.shape[2] != model.latent_dim:
            raise ValueError(f"{lat} has shape {latent.shape}, which does not match the {part.n_frames} frames of {f} and the "
                             f"model's latent dimension {model.latent_dim}; regenerate both with this model.")
        lss_parts.append(part)
        latents.append(latent)
    if len({a.shape[1] for a in latents}) != 1:
        raise ValueError("all --lss files must have the same number of frames per trajectory; generate them with one --n-steps.")
    lss = md.join(lss_parts) if len(lss_parts) > 1 else lss_parts[0]
    train = load_trajectories(args.train, args.top) if args.train else None
    if train is not None:
        check_atoms("--train", args.train, train)
    metrics = validate(model, md_trajs, lss, np.concatenate(latents), train_trajs=train, out_dir=args.out, seed=args.seed)
    _print_report(metrics, args.out)
    return 0


def _print_report(m: dict, out) -> None:
    its = m["implied_timescales_ps"]
    fmt = lambda v: ", ".join("nan" if t is None else f"{t:.3g}" for t in v)  # noqa: E731
    s = m["structure"]
    print(
        "\nLSS vs MD"
        f"\n  F(phi, psi) RMSE        {m['free_energy_phi_psi']['rmse_kT']:.2f} kT over {m['free_energy_phi_psi']['n_bins']} bins"
        f"  (MD half vs half: {m['free_energy_phi_psi']['md_half_vs_half_rmse_kT']:.2f} kT)"
        f"\n  F(psi1) RMSE            {m['free_energy_psi1']['rmse_kT']:.2f} kT"
        f"\n  timescales MD (ps)      {fmt(its['md'])}  (SE {fmt(its['md_se'])})"
        f"\n  timescales LSS (ps)     {fmt(its['lss'])}"
        f"\n  Rg MD / LSS (nm)        {s['radius_of_gyration_nm']['md'][0]:.4f} ± {s['radius_of_gyration_nm']['md'][1]:.4f}"
        f" / {s['radius_of_gyration_nm']['lss'][0]:.4f} ± {s['radius_of_gyration_nm']['lss'][1]:.4f}"
        f"\n  bond length MAD         {100 * s['geometry']['bond_length_mad_relative']:.2f} %"
        f"  (MD itself: {100 * s['geometry']['reference_bond_length_mad_relative']:.2f} %)"
        f"\n  frames with clashes     {100 * s['clashes']['lss']['fraction_frames_with_clash']:.2f} %"
        f"  (MD: {100 * s['clashes']['md']['fraction_frames_with_clash']:.2f} %)"
        f"\n  TICA F RMSE             {m['tica']['rmse_kT']:.2f} kT"
    )
    if "decoder" in m:
        rt, full = m["decoder"]["round_trip"], m["decoder"]["lss"]
        pct = lambda d: f"{100 * d:.2f} %"  # noqa: E731
        lines = ["\ndecoder alone, decode(encode(MD)) vs MD  (full LSS in brackets)"]
        if "free_energy_phi_psi" in rt:
            fe = rt["free_energy_phi_psi"]
            floor = f", MD vs MD {fe['md_vs_md_rmse_kT']:.2f} kT" if "md_vs_md_rmse_kT" in fe else ""
            lines.append(f"  F(phi, psi) RMSE        {fe['rmse_kT']:.2f} kT  ({full['free_energy_phi_psi']['rmse_kT']:.2f} kT)"
                         f"{floor}; bins visited {fe['coverage']:.1%} ({full['free_energy_phi_psi']['coverage']:.1%})")
            pops = rt["basin_populations"]
            lines.append("  populations MD / dec.   " + ", ".join(
                f"{b} {pops['md'][b]:.4f} / {pops['generated'][b]:.4f} ({full['basin_populations']['generated'][b]:.4f})"
                for b in pops["md"]))
        g, gl = rt["geometry"], full["geometry"]
        lines.append(f"  bond MAD                {pct(g['bond_length_mad_relative'])}  ({pct(gl['bond_length_mad_relative'])}), "
                     f"MD {pct(g['reference_bond_length_mad_relative'])}; frames with a bond > 10 % off "
                     f"{pct(rt['bonds_off_10pct_fraction']['generated'])} ({pct(full['bonds_off_10pct_fraction']['generated'])})")
        lines.append(f"  angle MAD               {g['angle_mad_degrees']:.2f}°  ({gl['angle_mad_degrees']:.2f}°), "
                     f"MD {g['reference_angle_mad_degrees']:.2f}°")
        lines.append(f"  frames with clashes     {pct(rt['clashes']['generated']['fraction_frames_with_clash'])}  "
                     f"({pct(full['clashes']['generated']['fraction_frames_with_clash'])})")
        print("\n".join(lines))
    print(f"  report                  {out}/metrics.json and *.png")
    if "ensemble" in m:
        e = m["ensemble"]
        g = lambda v, spec: "nan" if v is None else format(v, spec)  # noqa: E731  (JSON None = a NaN estimate)
        print(
            f"  ensemble ({e['n_members']} propagators, mean ± spread):"
            f"\n    t1 (ps)               {g(e['t1_ps']['mean'], '.3g')} ± {g(e['t1_ps']['std'], '.2g')}"
            f"  (MD block SE {g(e['md_block_se']['t1_ps'], '.2g')})"
            f"\n    F(phi, psi) RMSE      {g(e['free_energy_phi_psi_rmse_kT']['mean'], '.2f')} ± "
            f"{g(e['free_energy_phi_psi_rmse_kT']['std'], '.2f')} kT"
            + "".join(f"\n    population {b:<10} {g(v['mean'], '.3f')} ± {g(v['std'], '.3f')}"
                      for b, v in e["populations"].items())
        )


def _lagscan(args) -> int:
    from pathlib import Path

    import jax
    import numpy as np

    from lss_jax import _io
    from lss_jax.analysis.plots import implied_timescales_vs_lag
    from lss_jax.data.featurize import FeatureSpec, featurize, load_trajectories, standardizer_fit
    from lss_jax.encoder import srv_lag_scan

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; lagscan writes a directory: give a new path.")
    trajs = load_trajectories(args.traj, args.top, stride=args.stride)
    longest = max(len(t) for t in trajs)
    if max(args.lags) >= longest - 1:
        raise ValueError(f"--lags {max(args.lags)} is not shorter than the trajectories (longest: {longest} frames after "
                         f"--stride {args.stride}); use shorter lags or longer trajectories.")
    feats = [featurize(t, FeatureSpec()) for t in trajs]
    scaler = standardizer_fit(feats)
    frame_time = float(trajs[0].timestep) if trajs[0].n_frames > 1 else 1.0
    its = srv_lag_scan([scaler.transform(f) for f in feats], args.lags, args.n_outputs, key=jax.random.key(args.seed),
                       frame_time=frame_time, max_epochs=args.epochs)
    out.mkdir(parents=True, exist_ok=True)
    implied_timescales_vs_lag(args.lags, its, frame_time=frame_time, unit="ps", path=out / "its.png")
    _io.write_json(out / "its.json", {"lags_frames": list(args.lags), "frame_time_ps": frame_time,
                                      "implied_timescales_ps": [[None if np.isnan(t) else float(t) for t in row] for row in its]})
    print("\nimplied timescales (ps) vs lag")
    for lag, row in zip(args.lags, its):
        print(f"  lag {lag:>4} frames ({lag * frame_time:g} ps): " + ", ".join(f"{t:.3g}" for t in row))
    print(f"  figure {out / 'its.png'}")
    return 0


def _adapt(args) -> int:
    from pathlib import Path

    from lss_jax.adaptive import adaptive_sampling
    from lss_jax.data.featurize import load_trajectories
    from lss_jax.lss import LSS

    out = Path(args.out)
    if not out.parent.exists():
        raise FileNotFoundError(f"the parent directory of --out ({out.parent}) does not exist; create it first.")
    if args.prmtop and args.system_xml:
        raise ValueError("give either --prmtop or --system-xml, not both.")
    if not 0.0 <= args.beta <= 1.0:
        raise ValueError(f"--beta must be in [0, 1] (0: least counts, 1: equilibrium), got {args.beta}.")
    model = LSS.load(args.model)
    trajs = load_trajectories(args.traj, args.top)
    system = None
    if args.prmtop or args.system_xml:
        from lss_jax.md import MDSystem

        pdb = args.pdb or args.top
        if pdb is None or Path(pdb).suffix != ".pdb":
            raise ValueError("running MD needs a PDB of the system: give --pdb (or a .pdb --top).")
        system = MDSystem(pdb=pdb, prmtop=args.prmtop, system_xml=args.system_xml, platform=args.platform)
    logs = adaptive_sampling(trajs, model.config, out, system=system, n_rounds=args.rounds, n_seeds=args.n_seeds,
                             beta=args.beta, md_frames=args.md_frames, model=model, seed=args.seed, progress=not args.no_progress)
    print("\nadaptive sampling")
    for entry in logs:
        if entry.get("seeds_only"):
            print(f"  round {entry['round']}: seeds written to {entry['seeds_pdb']} (no MD system given)")
        else:
            print(f"  round {entry['round']}: {len(entry['md_files'])} new trajectories, "
                  f"{entry['n_frames_total']:,} frames in total, {entry['seconds']:.0f} s")
    print(f"  rounds in {out}")
    return 0


def _demo(args) -> int:
    from pathlib import Path

    import jax

    from lss_jax.analysis.molecular import validate
    from lss_jax.datasets import load_alanine_dipeptide
    from lss_jax.lss import LSS

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train = load_alanine_dipeptide("train")
    independent = load_alanine_dipeptide("independent")
    settings = dict(lag=5, latent_dim=2, seed=args.seed)
    if args.quick:
        settings.update(encoder_epochs=5, propagator_epochs=10, decoder_iterations=500)
    model = LSS(**settings).fit(train, progress=not args.no_progress)
    model.save(out / "model")
    n_traj, n_steps = (50, 200) if args.quick else (100, 1000)
    lss, latent = model.generate(jax.random.key(args.seed + 1), n_traj, n_steps, return_latent=True,
                                 progress=not args.no_progress)
    _write_generated(lss, latent, out / "lss.xtc")
    metrics = validate(model, independent, lss, latent, train_trajs=train, out_dir=out / "report")
    _print_report(metrics, out / "report")
    print(f"  total wall time         {time.perf_counter() - start:.1f} s")
    return 0


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_resolved(args, extra: dict | None = None) -> None:
    """Write the resolved options (and config extras) as TOML next to the command's outputs."""
    from pathlib import Path

    from lss_jax._io import atomic_path

    out = Path(args.out)
    where = out if out.is_dir() else out.parent
    name = f"lss-jax-{args.command}.toml" if out.is_dir() else f"{out.with_suffix('').name}.lss-jax-{args.command}.toml"
    skip = {"command", "config", "debug", "version", "lss_config", "start_time"}
    values = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    values.update(extra or {})
    text = f"# resolved options of `lss-jax {args.command}`; rerun with --config this-file\n"
    text += "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())
    with atomic_path(where / name) as tmp:
        tmp.write_text(text)


def _apply_config(parser, argv):
    """Pre-read --config of the subcommand: its keys become option defaults (and satisfy required options)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        return argv, {}
    command = next((a for a in argv if a in parser.subcommands), None)
    config = None
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            config = argv[i + 1]
        elif a.startswith("--config="):
            config = a.split("=", 1)[1]
    if command is None or config is None:
        return argv, {}
    import dataclasses
    import difflib

    data = _load_config(config)
    sub = parser.subcommands[command]
    actions = {a.dest: a for a in sub._actions if a.dest not in ("config", "help")}
    kinds = {}  # key -> expected TOML type: "bool", "int", "positive int", "float", "str" or "list[...]" of one
    for dest, action in actions.items():
        base = {_positive_int: "positive int", int: "int", float: "float"}.get(action.type, "str")
        kinds[dest] = "bool" if action.nargs == 0 else f"list[{base}]" if action.nargs in ("+", "*") else base
    fields = {}
    if command == "train":  # other keys are LSSConfig fields
        from lss_jax.lss import LSSConfig

        types = {"int": "int", "float": "float", "bool": "bool", "str": "str", "tuple[str, ...]": "list[str]",
                 "tuple[int, ...]": "list[int]"}
        fields = {f.name: types.get(str(f.type).replace(" | None", "")) for f in dataclasses.fields(LSSConfig)}
    valid = sorted(set(kinds) | set(fields))
    unknown = [k for k in data if k.replace("-", "_") not in valid]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k.replace("-", "_"), valid, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"unknown key(s) {', '.join(hints)} in config file {config}; valid keys: {', '.join(valid)}.")

    def matches(value, kind):
        if kind is None:
            return True
        if kind.startswith("list["):
            return isinstance(value, list) and all(matches(v, kind[5:-1]) for v in value)
        if isinstance(value, bool) or kind == "bool":
            return kind == "bool" and isinstance(value, bool)
        if kind in ("int", "positive int"):
            return isinstance(value, int) and (kind == "int" or value >= 1)
        return isinstance(value, (int, float)) if kind == "float" else isinstance(value, str)

    described = {"bool": "true or false", "int": "an integer", "positive int": "a positive integer", "float": "a number",
                 "str": "a quoted string"}
    toml_types = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
                  dict: "a table"}
    defaults, extras = {}, {}
    for key, value in data.items():
        dest = key.replace("-", "_")
        kind = kinds.get(dest, fields.get(dest))
        if kind and kind.startswith("list[") and dest in kinds and not isinstance(value, list):
            value = [value]  # one file for an option that takes several
        if not matches(value, kind):
            want = (f"an array of {described[kind[5:-1]].split(' ', 1)[1]}s" if kind.startswith("list[")
                    else described[kind])
            got = toml_types.get(type(value), type(value).__name__)
            raise ValueError(f"config file {config}: {key} must be {want}, got {value!r} ({got}); correct it in the file.")
        if dest in kinds:
            defaults[dest] = value
            actions[dest].required = False
        else:
            extras[dest] = value
    sub.set_defaults(**defaults)
    return argv, extras


def main(argv=None) -> int:
    """Run the command line; errors are one line on stderr (exit 1; 2 for usage errors), tracebacks only with --debug."""
    import re
    import shutil
    from pathlib import Path

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in parser.subcommands), None)
    prefix = f"lss-jax {command}" if command else "lss-jax"
    debug = "--debug" in (argv[: argv.index(command)] if command else argv)

    def one_line(err: BaseException) -> str:
        text = " ".join(str(err).split())
        if isinstance(err, (ValueError, OSError, FloatingPointError, RuntimeError)) or not text:
            hint = ""
            if type(err).__name__ == "ModelFormatError" and "Upgrade" not in text:
                hint = " Retrain with `lss-jax train` or copy the complete model directory again."
            return (text or type(err).__name__) + hint
        first = str(err).strip().splitlines()[0]
        return f"unexpected {type(err).__name__}: {first} (rerun with --debug for the traceback, and report it)"

    class UsageError(Exception):
        pass

    def usage_error(p):
        names = {"_positive_int": "a positive integer", "int": "an integer", "float": "a number"}

        def error(message):
            message = re.sub(r"invalid (\w+) value: (.*)", lambda m: f"expected {names.get(m[1], m[1])}, got {m[2]}", message)
            raise UsageError(f"{p.prog}: error: {message}; see `{p.prog} --help`.")

        return error

    for p in (parser, *parser.subcommands.values()):
        p.error = usage_error(p)  # argparse would print the usage block too: keep errors on one line
    try:
        argv, extras = _apply_config(parser, argv)
        args = parser.parse_args(argv)
    except UsageError as err:  # no traceback even with --debug: it would only show argparse
        print(err, file=sys.stderr)
        return 2
    except Exception as err:
        if debug:
            raise
        print(f"{prefix}: error: {one_line(err)}", file=sys.stderr)
        return 1
    args.lss_config = extras
    if args.version:
        from lss_jax import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {"four-well": _four_well, "train": _train, "generate": _generate, "report": _report, "demo": _demo,
                "lagscan": _lagscan, "adapt": _adapt, "adapt-four-well": _adapt_four_well}
    # No partial output: on failure remove what train/report/lagscan created under --out (generate keeps its
    # chunks on purpose, so that a rerun continues; it checks its inputs before writing anything).
    out = Path(args.out) if args.command in ("train", "report", "lagscan") else None
    out_existed = out is not None and (out.exists() or out.is_symlink())
    before = set(out.iterdir()) if out_existed and out.is_dir() else set()

    def remove_partial_output():
        if out is None:
            return
        try:
            if not out_existed:
                targets = [out] if out.exists() or out.is_symlink() else []
            else:
                targets = sorted(set(out.iterdir()) - before) if out.is_dir() and args.command != "train" else []
            for t in targets:
                shutil.rmtree(t) if t.is_dir() and not t.is_symlink() else t.unlink()
        except OSError:
            pass

    args.start_time = time.perf_counter()
    try:
        if getattr(args, "model", None) and not Path(args.model).is_dir():
            raise FileNotFoundError(f"model directory not found: {args.model}; give the directory that "
                                    "`lss-jax train --out` wrote.")
        code = handlers[args.command](args)
        if code == 0:
            _write_resolved(args, extras)
        return code
    except KeyboardInterrupt:
        remove_partial_output()
        print(f"lss-jax {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        remove_partial_output()
        if args.debug:
            raise
        print(f"lss-jax {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
