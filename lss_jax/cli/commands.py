"""The ``lss-jax`` commands: one function per command, ``(args) -> exit code``; argument checks that need the
files (lengths, atom counts, formats) happen here, before any work, and say how to fix the input."""

from __future__ import annotations

import json
import math
import sys
import time


def four_well(args) -> int:
    from lss_jax.pipelines.four_well import FourWellConfig, run_four_well

    overrides = {"seed": args.seed}
    if args.n_traj:
        overrides["n_trajectories"] = args.n_traj
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


def adapt_four_well(args) -> int:
    from lss_jax.adaptive.four_well import AdaptiveConfig, run_adaptive_four_well

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


def train(args) -> int:

    from lss_jax.data.checks import check_training_input
    from lss_jax.model.facade import LSS
    from lss_jax.protocols import protocol_config

    out = _out_path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; the model is a directory: give a new path.")
    data = dict(args.lss_config)  # [data], [encoder], [propagator], [decoder] tables (or flat keys) of --config
    auto_lag = args.lag == "auto"
    data["lag"] = 1 if auto_lag else args.lag  # --lag auto: replaced by the lag chosen once the features are read
    if args.latent_dim:
        data["encoder"] = {**data.get("encoder", {}), "latent_dim": args.latent_dim}
    if args.seed is not None:
        data["seed"] = args.seed
    # the protocol decides the features and the decoded atoms, so it is chosen from the topology before the data is
    # read; the configuration's fields (--config, --latent-dim, --seed) go on top of it
    protocol, chosen = _protocol(args.protocol, args.traj, args.top)
    try:
        config = protocol_config(protocol.name, data["lag"], data,
                                 source=f"config file {args.config}" if args.config else None)
    except (TypeError, ValueError) as err:
        where = f" in config file {args.config}" if args.config else ""
        raise ValueError(f"invalid configuration{where}: {err}") from err
    from lss_jax.data.stream import load_training_data

    # streamed: the decoded atoms and the features, nothing else; checks the files and the memory first
    trajs = load_training_data(args.traj, args.top, config, stride=args.stride)
    lag_choice = None
    if auto_lag:
        lag_choice = _choose_lag(trajs, args.stride)
        config = config.replace(lag=lag_choice.lag)
    check_training_input(trajs.lengths, config, n_features=trajs.features[0].shape[1], names=args.traj,
                         lag_name="--lag", stride_name=f"--stride {args.stride}")
    from lss_jax.data.checks import check_training_data
    from lss_jax.data.featurize import feature_names

    # the data must move (constant trajectories, zero-variance features, repeated frames, a latent dimension the
    # data cannot support): refused here, before any checkpoint is written
    for line in check_training_data(trajs.features, config, names=args.traj,
                                    feature_names=feature_names(trajs.topology, config.feature_spec)):
        print(f"lss-jax train: warning: {line}", file=sys.stderr)
    start = time.perf_counter()
    checkpoints = out.parent / f"{out.name}.checkpoints"
    if args.resume and not checkpoints.is_dir():
        raise FileNotFoundError(f"--resume: no checkpoints at {checkpoints}; run without --resume to start training.")
    import warnings

    had_checkpoints = checkpoints.exists()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the consistency warnings are printed in the summary below
            model = LSS(config=config).fit(trajs, progress=not args.no_progress, checkpoint_dir=checkpoints,
                                           resume=args.resume, checkpoint_every=args.checkpoint_every).fetch_model()
        extra = {"protocol": protocol.as_info(chosen)}
        if lag_choice is not None:
            extra["lag_choice"] = lag_choice.as_info(trajs.timestep)
        model = model.replace(info_json=json.dumps({**model.info, **extra}))
        model.save(out)
        if lag_choice is not None:  # next to the model's files, as lss-jax-train.toml (the format lists its own)
            import matplotlib.pyplot as plt

            from lss_jax.analysis.plots import implied_timescales_vs_lag

            plt.close(implied_timescales_vs_lag(lag_choice.lags, lag_choice.timescales * trajs.timestep,
                                                errors=lag_choice.errors * trajs.timestep, chosen=lag_choice.lag,
                                                frame_time=trajs.timestep, unit="ps", path=out / "lag_choice.png"))
    except BaseException as err:
        _keep_checkpoints_only_if_resumable(err, checkpoints, had_checkpoints)
        raise
    import shutil

    shutil.rmtree(checkpoints, ignore_errors=True)
    info = model.info
    enc, dec = info["encoder"], info["decoder"]
    ts = ", ".join(f"{t:.3g}" for t in info["srv_timescales_ps"])
    lag_note = f", chosen from the data (--lag auto; figure {out / 'lag_choice.png'})" if lag_choice else ""
    print(
        f"\ntrained LSS on {info['n_frames']:,} frames from {info['n_trajectories']} trajectories"
        f"\n  protocol            {protocol.name} ({'chosen from the topology: ' if chosen else ''}{protocol.reason})"
        f"\n  lag                 {config.lag} frames = {info['lag_time_ps']:g} (trajectory time units, ps)"
        f"{lag_note}"
        f"\n  SRV timescales      {ts}"
        f"\n  latent dimension    {info['latent_dim']}"
        f"\n  encoder VAMP-2      {enc['last_epoch_train_batches_vamp2']:.3f} on training minibatches (train-mode batch "
        f"norm), {enc['train_vamp2_eval_mode']:.3f} on all training pairs (eval mode), {enc['best_val_vamp2']:.3f} on "
        f"validation\n                      (the first gap is batch norm and minibatch estimates, the second is "
        f"generalization to unseen data)"
        f"{_floor_lines(enc, info['latent_dim'], info['lag_time_ps'])}"
        f"\n  decoder             {dec['kind']} on {dec['coordinates']} coordinates, {dec['epochs']} epochs in "
        f"{dec['seconds']:.0f} s, validation loss {dec['best_val_loss']:.4g}{_sampler_words(dec)}"
        f"{_consistency_lines(info['consistency'])}"
        f"\n  wall time           {time.perf_counter() - start:.1f} s"
        f"\n  model               {out}"
    )
    return 0


def _protocol(name: str, traj, top):
    """``(Choice, chosen)``: the protocol of ``train`` (:mod:`lss_jax.protocols`), chosen from the topology of the
    first trajectory when ``name`` is ``"auto"`` (printed with the reason), else the one given."""
    from lss_jax.data.featurize import load_trajectories
    from lss_jax.protocols import PROTOCOLS, Choice, choose_protocol

    if name != "auto" and name not in PROTOCOLS:  # argparse checks --protocol; this is `protocol = ...` in --config
        raise ValueError(f"protocol must be auto or one of {', '.join(PROTOCOLS)}, got {name!r}; set --protocol "
                         f"(or protocol = ... in --config) to one of them.")
    rule = choose_protocol(load_trajectories(traj[:1], top, first_frame_only=True)[0].topology)
    if name == "auto":
        print(f"lss-jax train: protocol {rule.name} ({rule.reason}); --protocol NAME to override")
        return rule, True
    reason = f"given with --protocol: {PROTOCOLS[name].summary}"
    if rule.name != name:
        reason += f"; the topology's would be {rule.name} ({rule.reason})"
    print(f"lss-jax train: protocol {name} ({reason})")
    return Choice(name, reason, rule.facts), False


def _choose_lag(trajs, stride: int):
    """``--lag auto``: the lag chosen from the training features (:func:`lss_jax.analysis.lagchoice.choose_lag`),
    printed with the evidence; its ``ValueError`` (data too short to decide) says to give ``--lag N``."""
    from lss_jax.analysis.lagchoice import choose_lag, format_lag_table

    start = time.perf_counter()
    try:
        choice = choose_lag(trajs.features)
    except ValueError as err:
        raise ValueError(f"--lag auto: {err}".replace("(--lag N;", f"(--lag N in frames after --stride {stride};")) from err
    print(f"lss-jax train: lag chosen from the data (--lag auto): implied timescales of linear TICA on the features "
          f"against the lag, errors from a {choice.n_blocks}-block bootstrap ({time.perf_counter() - start:.1f} s)\n"
          f"{format_lag_table(choice, trajs.timestep, 'ps')}\n"
          f"  chosen: lag {choice.lag} frames = {choice.lag * trajs.timestep:g} ps: {choice.reason}")
    return choice


def _sampler_words(dec: dict) -> str:
    """How a flow-matching decoder samples, for the train summary ("" for the other kinds and older models)."""
    if "sampler_steps" not in dec:
        return ""
    from lss_jax.decoder.chain import template_steps

    steps, solver, t0 = dec["sampler_steps"], dec["sampler_solver"], dec.get("template_time")
    steps = template_steps(steps, t0) if t0 else steps
    how = f"{steps} {solver.capitalize()} step{'s' if steps != 1 else ''}"
    if t0:
        return (f"; samples with {how} from t = {t0:g}, started at one of {dec['template_frames']} stored training "
                f"frames (decoder.template_time)")
    return f"; samples with {how}" + (" (distilled; decoder.distill_steps = 0: the flow itself)" if dec["distilled"] else "")


def _floor_lines(enc: dict, latent_dim: int, lag_ps: float) -> str:
    """The train summary's linear floor: the encoder against TICA on the same features, lag and validation pairs."""
    floor = enc.get("linear_floor")
    if floor is None:
        return ""
    ts = ", ".join("not estimated" if not math.isfinite(t) else f"{t:.3g}" for t in floor["tica_timescales_ps"])
    how = ("trained from TICA with a linear path (the plain SRV had lost a slow process TICA finds)"
           if floor["tica_path"] else "the plain SRV")
    if floor.get("below"):
        how += (" -- BELOW TICA: it loses a slow process TICA finds; linear_floor = true under [encoder] in "
                "--config trains it from TICA")
    se = {p: f" (SE {floor[f'diff_se_{p}']:.3f})" if f"diff_se_{p}" in floor else "" for p in ("train", "val")}
    from lss_jax.encoder import resolved_processes

    slow = ""
    pairs = resolved_processes(floor, "train")
    if pairs:
        def t_ps(eigenvalue):
            return f"{-lag_ps / math.log(eigenvalue):.3g}" if 0 < eigenvalue < 1 else "none"
        slow = ("\n                      slow processes SRV vs TICA on the training part, TICA cross-fitted (ps): "
                + ", ".join(f"{t_ps(a)} vs {t_ps(b)}" for a, b, _ in pairs))
    elif "tica_train_eigenvalues" in floor:
        slow = ("\n                      slow processes: none of TICA's (cross-fitted) is slower than the lag, so "
                "there is none for the floor to guard")
    return (f"\n  linear floor        VAMP-2 SRV vs TICA on the same features, lag and split: training pairs (TICA in sample) "
            f"{floor['srv_train_vamp2']:.3f} vs {floor['tica_train_vamp2']:.3f}{se['train']}, validation "
            f"{floor['srv_val_vamp2']:.3f} vs {floor['tica_val_vamp2']:.3f}{se['val']}; encoder: {how}{slow}"
            f"\n                      TICA timescales {ts}; latent dimension {latent_dim} from the gap of the better of the "
            f"two estimates")


def _value_with_error(value, error) -> str:
    """``value ± error`` for the summary, in words where an estimate is missing (NaN or JSON None)."""
    missing = lambda v: v is None or not math.isfinite(v)  # noqa: E731
    if missing(value):
        return "not estimated (too little data)"
    if missing(error):
        return f"{value:.3g} (no error estimate)"
    return f"{value:.3g} ± {error:.2g}"


def _keep_checkpoints_only_if_resumable(err: BaseException, checkpoints, had_checkpoints: bool) -> None:
    """After a failed or interrupted `train`: keep ``checkpoints`` if ``--resume`` can continue from them (and say
    so in the error), else remove the directory this run created."""
    import shutil
    from pathlib import Path

    from lss_jax.engine.checkpoint import CheckpointError
    from lss_jax.engine.io import OutputLockedError

    checkpoints = Path(checkpoints)
    if isinstance(err, (OutputLockedError, CheckpointError)) or not checkpoints.is_dir():
        return  # not ours, or the message already says what to do with them
    if any(checkpoints.glob("*.json")):
        note = (f"The training checkpoints in {checkpoints} are kept: rerun the same command with --resume to continue "
                "from them (finished networks are not retrained), or delete that directory to start over.")
        if isinstance(err, KeyboardInterrupt):
            print(f"lss-jax train: {note}", file=sys.stderr)
        else:
            err.add_note(note)
    elif not had_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)


def _consistency_lines(c: dict) -> str:
    """The train summary's kinetic self-consistency (lss_jax.analysis.consistency) and its warnings."""
    fmt = lambda v, e: ", ".join(_value_with_error(a, b) for a, b in zip(v, e))  # noqa: E731
    text = (f"\n  timescales          propagator (rollouts) {fmt(c['propagator_timescales'], c['propagator_timescales_se'])}"
            f"\n                      SRV on held-out frames {fmt(c['srv_heldout_timescales'], c['srv_heldout_timescales_se'])}"
            f"\n  wall reflections    {100 * c['reflection_fraction']:.2f} % of propagator steps")
    return text + "".join(f"\n  warning             {w}" for w in c["warnings"])


def _write_generated(traj, latent, out):
    """Write decoded frames to ``out``, the decoded atoms' PDB and ``<stem>.latent.npy`` next to it."""
    from pathlib import Path

    import numpy as np

    from lss_jax.engine import io as _io

    out = Path(out)
    stem = out.with_suffix("")
    with _io.atomic_path(out) as tmp:
        traj.save(str(tmp))
    with _io.atomic_path(stem.with_suffix(".pdb")) as tmp:
        traj[0].save_pdb(str(tmp))
    _io.save_npy(Path(f"{stem}.latent.npy"), np.asarray(latent, np.float32))
    return [out, stem.with_suffix(".pdb"), Path(f"{stem}.latent.npy")]


def _distributed_settings() -> dict:
    """``num_processes`` and ``process_id`` from ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` (JAX itself reads only
    ``JAX_COORDINATOR_ADDRESS``; the other two it takes from a cluster manager it recognizes)."""
    import os

    settings = {}
    for var, name in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        value = os.environ.get(var)
        if value is not None:
            if not value.strip().isdigit():
                raise ValueError(f"{var} must be a non-negative integer, got {value!r}.")
            settings[name] = int(value)
    return settings


def generate(args) -> int:
    from pathlib import Path

    import jax

    from lss_jax.generation.simulate import (
        check_output_format,
        export_trajectory,
        generate_to_directory,
        remove_generation,
    )
    from lss_jax.model.facade import LSS

    out = _out_path(args.out, what="the directory")
    to_directory = out.suffix == "" or out.is_dir()
    if args.latent_only and not to_directory and out.suffix != ".npy":
        raise ValueError(f"--latent-only writes a .npy file or a directory; got --out {out}.")
    if args.distributed and not to_directory:
        raise ValueError("--distributed writes one directory per process: give --out a directory (no extension).")
    if not to_directory:
        check_output_format(out)
    if not args.distributed:  # memory and disk before any work (with --distributed each process checks its share)
        from lss_jax.generation.simulate import check_generation_fits
        from lss_jax.model.io import _read_meta

        meta, _ = _read_meta(Path(args.model))
        if "latent_dim" in meta and "n_decoded_atoms" in meta:
            check_generation_fits(args.n_traj, args.n_steps, out, latent_dim=int(meta["latent_dim"]),
                                  n_atoms=int(meta["n_decoded_atoms"]), save_every=args.save_every,
                                  chunk_steps=args.chunk_steps, latent_only=args.latent_only,
                                  single_file=not to_directory)
    process_index, process_count = 0, 1
    if args.distributed:  # before anything starts JAX's backends (loading the model does)
        jax.distributed.initialize(**_distributed_settings())  # the rest from SLURM, Open MPI, ... if present
        process_index, process_count = jax.process_index(), jax.process_count()
    if args.host_devices:
        from lss_jax.engine.devices import use_every_core

        have = use_every_core(args.host_devices)
        if have != args.host_devices:
            raise ValueError(f"--host-devices {args.host_devices}: JAX already has {have} host device(s) (XLA_FLAGS sets "
                             "--xla_force_host_platform_device_count); drop one of the two settings.")
    model = LSS.load(args.model)
    devices = jax.local_devices()
    if args.devices:
        if args.devices > len(devices):
            raise ValueError(f"--devices {args.devices} but this process has {len(devices)} device(s).")
        devices = devices[: args.devices]
    work = out if to_directory else out.parent / f".{out.name}.parts"
    summary = generate_to_directory(
        jax.random.key(args.seed), model, work, args.n_traj, args.n_steps, save_every=args.save_every,
        chunk_steps=args.chunk_steps, latent_only=args.latent_only, precision=args.precision, devices=devices,
        process_index=process_index, process_count=process_count, progress=not args.no_progress,
    )
    written = [summary.path]
    if not to_directory:
        try:
            written = export_trajectory(work, out, progress=not args.no_progress)
        except Exception as err:  # e.g. the disk filled up: the chunks are complete, only the file is missing
            # (mdtraj's XTC and DCD writers report a failed write as their own error codes, not as OSError)
            reason = err.strerror if isinstance(err, OSError) and err.strerror else f"{type(err).__name__}: {err}"
            raise RuntimeError(f"could not write {out} ({reason}); the generated chunks are kept in {work}. Rerun the "
                               "same command to write the file from them without generating again (if the disk is "
                               "full or a file size limit was reached, free space or raise the limit first)") from err
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


def report(args) -> int:
    from pathlib import Path

    import mdtraj as md
    import numpy as np

    from lss_jax.data.featurize import load_trajectories
    from lss_jax.model.facade import LSS

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; the report is a directory: give a new path.")
    from lss_jax.engine import io as _io

    for f in args.lss:  # a generated file and its .latent.npy are renamed into place one after the other
        holder = _io.lock_holder(f)
        if holder is not None:
            raise ValueError(f"--lss {f} is being written by another lss_jax process ({_io._describe(holder)}); wait "
                             "for it to finish, then rerun the report.")
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
            from lss_jax.generation.simulate import load_generated

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
    if args.retrieval and train is None:
        raise ValueError("--retrieval decodes by retrieval from the training frames: give them with --train.")
    latent = np.concatenate(latents)
    metrics = _validation_report(model, md_trajs, lss, latent, train=train, out=args.out, seed=args.seed)
    _print_report(metrics, args.out)
    if args.retrieval:
        _retrieval_side_by_side(model, md_trajs, latent, metrics, train=train, out=out, seed=args.seed)
    return 0


def _validation_report(model, md_trajs, lss, latent, *, train, out, seed: int = 0) -> dict:
    """The validation report in ``out``: figures (:func:`lss_jax.analysis.plots.report_figures`), decoded models and
    ``metrics.json``, with the observables of the system the MD's decoded atoms belong to; returns the metrics."""
    import mdtraj as md

    from lss_jax.analysis import plots
    from lss_jax.analysis.molecular import run_validation, write_validation
    from lss_jax.systems.report import native_contacts_for, report_metrics_for

    first = md_trajs if isinstance(md_trajs, md.Trajectory) else md_trajs[0]
    decoded_top = first[:1].atom_slice(model.atom_indices).topology
    validation = run_validation(model, md_trajs, lss, latent, train_trajs=train, seed=seed,
                                system_metrics=report_metrics_for(decoded_top),
                                native_contacts_fn=native_contacts_for(decoded_top))
    plots.report_figures(out, validation, model)
    write_validation(out, validation)
    return validation.metrics


def _retrieval_side_by_side(model, md_trajs, latent, metrics: dict, *, train, out, seed: int = 0,
                            progress: bool | None = None) -> dict:
    """Decode ``latent`` (the report's latent trajectories) by retrieval from ``train``, report it in
    ``out/retrieval`` and print its numbers beside the model's decoder's; returns its metrics."""
    from pathlib import Path

    import jax
    import mdtraj as md

    retrieval = model.with_retrieval(train, seed=seed)
    xyz = retrieval.decode_unit(jax.random.key(seed), retrieval.to_unit(latent), progress=progress)
    lss = md.Trajectory(xyz.reshape(-1, *xyz.shape[-2:]), model.decoded_topology)
    theirs = _validation_report(retrieval, md_trajs, lss, latent, train=train, out=Path(out) / "retrieval", seed=seed)
    _print_side_by_side(metrics, theirs, model.config.decoder.kind, Path(out) / "retrieval")
    return theirs


def _side_by_side_rows(m: dict) -> dict:
    """The numbers of one report that ``report --retrieval`` compares: name -> (LSS value, MD's value, format);
    MD's is ``None`` where the report has none (for an RMSE: MD half vs half)."""
    t = m["tica"]
    rows = {}
    if "free_energy_phi_psi" in m:
        fe = m["free_energy_phi_psi"]
        rows["F(phi, psi) RMSE (kT)"] = (fe["rmse_kT"], fe["md_half_vs_half_rmse_kT"], ".2f")
    rows["F(TIC1) RMSE (kT)"] = (t["free_energy_tic1"]["rmse_kT"], t["free_energy_tic1"]["md_half_vs_half_rmse_kT"], ".2f")
    rows["t1 of the structures (ps)"] = ((t.get("lss_timescales_ps") or [None])[0], t["md_timescales_ps"][0], ".4g")
    if "folding" in m:
        f = m["folding"]
        bonds, pairs = f["virtual_bonds"]["fraction_frames_off_10pct"], f["close_pairs"]["separation_4"]
        rows["folded fraction"] = (f["folded_fraction"]["lss"], f["folded_fraction"]["md"], ".3f")
        rows["transitions per µs"] = (f["transitions_per_us"]["lss"], f["transitions_per_us"]["md"], ".0f")
        rows["Cα bonds > 10 % off (%)"] = (100 * bonds["lss"], 100 * bonds["md"], ".3f")
        rows["Cα pairs < 0.3 nm (%)"] = tuple(100 * pairs[k]["fraction_frames_below_0.3nm"] for k in ("lss", "md")) + (
            ".3f",)
    clashes = m["structure"]["clashes"]
    rows["frames with clashes (%)"] = tuple(100 * clashes[k]["fraction_frames_with_clash"] for k in ("lss", "md")) + (
        ".2f",)
    if "novelty_nearest_training_rmsd_nm" in m:
        nov = m["novelty_nearest_training_rmsd_nm"]
        rows["novelty, median (nm)"] = (nov["lss"]["median"], nov["independent_md"]["median"], ".3f")
    return rows


def _print_side_by_side(mine: dict, theirs: dict, kind: str, out) -> None:
    a, b = _side_by_side_rows(mine), _side_by_side_rows(theirs)
    cell = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731  (JSON None = a NaN estimate)
    print(f"\nthe same latent trajectories, decoder {kind} vs retrieval (report in {out})"
          f"\n  {'':<28}{kind:>12}{'retrieval':>12}{'MD':>12}  (RMSE rows: MD half vs half)")
    for name, (v, md_value, spec) in a.items():
        print(f"  {name:<28}{cell(v, spec):>12}{cell(b[name][0], spec):>12}{cell(md_value, spec):>12}")


def _print_report(m: dict, out) -> None:
    its = m["implied_timescales_ps"]
    fmt = lambda v: ", ".join("not estimated" if t is None else f"{t:.3g}" for t in v)  # noqa: E731
    s = m["structure"]
    phi_psi = (f"\n  F(phi, psi) RMSE        {m['free_energy_phi_psi']['rmse_kT']:.2f} kT over "
               f"{m['free_energy_phi_psi']['n_bins']} bins  (MD half vs half: "
               f"{m['free_energy_phi_psi']['md_half_vs_half_rmse_kT']:.2f} kT)") if "free_energy_phi_psi" in m else ""
    t1 = m["tica"]["free_energy_tic1"]
    print(
        "\nLSS vs MD"
        f"{phi_psi}"
        f"\n  F(psi1) RMSE            {m['free_energy_psi1']['rmse_kT']:.2f} kT"
        f"\n  F(TIC1) RMSE            {t1['rmse_kT']:.2f} kT  (MD half vs half: {t1['md_half_vs_half_rmse_kT']:.2f} kT)"
        f"\n  timescales MD (ps)      {fmt(its['md'])}  (SE {fmt(its['md_se'])})"
        f"\n  timescales LSS (ps)     {fmt(its['lss'])}"
        f"\n  Rg MD / LSS (nm)        {s['radius_of_gyration_nm']['md'][0]:.4f} ± {s['radius_of_gyration_nm']['md'][1]:.4f}"
        f" / {s['radius_of_gyration_nm']['lss'][0]:.4f} ± {s['radius_of_gyration_nm']['lss'][1]:.4f}"
        f"\n  bond length MAD         {100 * s['geometry']['bond_length_mad_relative']:.2f} %"
        f"  (MD itself: {100 * s['geometry']['reference_bond_length_mad_relative']:.2f} %)"
        f"\n  frames with clashes     {100 * s['clashes']['lss']['fraction_frames_with_clash']:.2f} %"
        f"  (MD: {100 * s['clashes']['md']['fraction_frames_with_clash']:.2f} %)"
        f"\n  TICA F RMSE             {m['tica']['rmse_kT']:.2f} kT"
        + (f"\n  t1 of the structures    MD {m['tica']['md_timescales_ps'][0]:.3g} ps, LSS "
           f"{fmt(m['tica']['lss_timescales_ps'][:1])} ps  (TICA of the decoded atoms' distances at the lag)"
           if m["tica"].get("lss_timescales_ps") else "")
    )
    if "folding" in m:
        f = m["folding"]
        print(
            f"  folded fraction         MD {f['folded_fraction']['md']:.3f} ± {f['folded_fraction']['md_se']:.3f}, "
            f"LSS {f['folded_fraction']['lss']:.3f}"
            f"\n  transitions per µs      MD {f['transitions_per_us']['md']:.0f} ± {f['transitions_per_us']['md_se']:.0f}, "
            f"LSS {f['transitions_per_us']['lss']:.0f}  (frames {f['lss_frame_time_ps']:g} ps apart)"
            f"\n  RMSD to native, folded  MD {f['rmsd_to_native_folded_nm']['md'][0]:.3f} nm, "
            f"LSS {f['rmsd_to_native_folded_nm']['lss'][0]:.3f} nm"
            f"\n  Cα bonds > 10 % off     MD {100 * f['virtual_bonds']['fraction_frames_off_10pct']['md']:.3f} %, "
            f"LSS {100 * f['virtual_bonds']['fraction_frames_off_10pct']['lss']:.3f} % of frames"
            f"\n  closest Cα, |i-j| >= 4  MD {f['close_pairs']['separation_4']['md']['min_nm']:.3f} nm, "
            f"LSS {f['close_pairs']['separation_4']['lss']['min_nm']:.3f} nm; frames below 0.3 nm: LSS "
            f"{100 * f['close_pairs']['separation_4']['lss']['fraction_frames_below_0.3nm']:.3f} %"
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
        s = m["decoder"].get("support", {})
        if s.get("redraws"):
            lines.append(f"  outside the training support: first draws {pct(s['first_draw_outside_fraction'])}, after "
                         f"{s['redraws']} redraws {pct(s['outside_after_redraws_fraction'])}; MD frames "
                         f"{pct(s['md_outside_fraction'])}")
        c = m["decoder"].get("conditional", {})
        if "radius_of_gyration_nm" in c:
            names = [(n, key) for n, key in (("Rg", "radius_of_gyration_nm"), ("pairs", "pair_distances_nm"), ("Q", "q"))
                     if key in c]
            num = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
            lines.append(f"  at {c['n_points']} latent points  W1 / MD-vs-MD floor " + ", ".join(
                f"{n} {num(c[key]['w1_ratio'])}" for n, key in names) + "; sd decoded / MD " + ", ".join(
                f"{n} {num(c[key]['sd_ratio'])}" for n, key in names) + "; mean's slope in psi decoded / MD " + ", ".join(
                f"{n} {num(c[key].get('slope_ratio'))}" for n, key in names) + "  (decoder vs MD at fixed psi)")
        print("\n".join(lines))
    if "kinetics" in m:
        k = m["kinetics"]
        num = lambda v: "not estimated" if v is None else f"{v:.3f}"  # noqa: E731  (JSON None = a NaN estimate)
        pair = lambda e: f"{num(e['lss_vs_md'])} (MD vs MD {num(e['md_vs_md'])})"  # noqa: E731
        print(f"  JSD TIC 0 / (TIC 0, 1)  {pair(k['jsd']['tica_0'])} / {pair(k['jsd']['tica_01'])}"
              f"\n  metastable populations  TV distance {pair(k['msm']['populations'])}; MFPT |ln ratio| "
              f"{pair(k['msm']['mfpt'])}")
    if "consistency" in m:
        c = m["consistency"]
        if c["ck"] is not None:
            print(f"  Chapman-Kolmogorov      {'passed' if c['ck']['passed'] else 'failed'} (largest deviation "
                  f"{c['ck']['max_deviation_sigma']:.1f} SE, lags {', '.join(f'{t:g}' for t in c['ck']['lags_ps'])} ps)")
        print(f"  wall reflections        {100 * c['reflection_fraction']:.2f} % of the propagator's steps")
        for w in c["warnings"]:
            print(f"  warning                 {w}")
    print(f"  report                  {out}/metrics.json and *.png")
    if "ensemble" in m:
        e = m["ensemble"]
        g = lambda v, spec: "not estimated" if v is None else format(v, spec)  # noqa: E731  (JSON None = a NaN estimate)
        print(
            f"  ensemble ({e['n_members']} propagators, mean ± spread):"
            f"\n    t1 (ps)               {g(e['t1_ps']['mean'], '.3g')} ± {g(e['t1_ps']['std'], '.2g')}"
            f"  (MD block SE {g(e['md_block_se']['t1_ps'], '.2g')})"
            f"\n    F(psi1) RMSE          {g(e['free_energy_psi1_rmse_kT']['mean'], '.2f')} ± "
            f"{g(e['free_energy_psi1_rmse_kT']['std'], '.2f')} kT"
            + "".join(f"\n    population {b:<10} {g(v['mean'], '.3f')} ± {g(v['std'], '.3f')}"
                      for b, v in e["populations"].items())
        )


def lagscan(args) -> int:
    from pathlib import Path

    import jax
    import numpy as np

    from lss_jax.analysis.plots import implied_timescales_vs_lag
    from lss_jax.config import EncoderConfig
    from lss_jax.data.featurize import FeatureSpec, featurize, load_trajectories, standardizer_fit
    from lss_jax.encoder import srv_lag_scan
    from lss_jax.engine import io as _io

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; lagscan writes a directory: give a new path.")
    trajs = load_trajectories(args.traj, args.top, stride=args.stride)
    longest = max(len(t) for t in trajs)
    if max(args.lags) >= longest - 1:
        raise ValueError(f"--lags {max(args.lags)} is not shorter than the trajectories (longest: {longest} frames after "
                         f"--stride {args.stride}); use shorter lags or longer trajectories.")
    spec = FeatureSpec(torsions=tuple(args.torsions), distances=None if args.distances == "none" else args.distances)
    feats = [featurize(t, spec) for t in trajs]
    scaler = standardizer_fit(feats)
    frame_time = float(trajs[0].timestep) if trajs[0].n_frames > 1 else 1.0
    its = srv_lag_scan(jax.random.key(args.seed), [scaler.transform(f) for f in feats], args.lags, args.n_outputs,
                       frame_time=frame_time, config=EncoderConfig(epochs=args.epochs, linear_floor=True))  # as train
    out.mkdir(parents=True, exist_ok=True)
    implied_timescales_vs_lag(args.lags, its, frame_time=frame_time, unit="ps", path=out / "its.png")
    _io.write_json(out / "its.json", {"lags_frames": list(args.lags), "frame_time_ps": frame_time,
                                      "implied_timescales_ps": [[None if np.isnan(t) else float(t) for t in row] for row in its]})
    print("\nimplied timescales (ps) vs lag")
    for lag, row in zip(args.lags, its):
        print(f"  lag {lag:>4} frames ({lag * frame_time:g} ps): " + ", ".join(f"{t:.3g}" for t in row))
    print(f"  figure {out / 'its.png'}")
    return 0


def adapt(args) -> int:
    from pathlib import Path

    from lss_jax.adaptive import adaptive_sampling
    from lss_jax.data.featurize import load_trajectories
    from lss_jax.model.facade import LSS

    out = _out_path(args.out)
    if args.prmtop and args.system_xml:
        raise ValueError("give either --prmtop or --system-xml, not both.")
    if not 0.0 <= args.beta <= 1.0:
        raise ValueError(f"--beta must be in [0, 1] (0: least counts, 1: equilibrium), got {args.beta}.")
    model = LSS.load(args.model)
    trajs = load_trajectories(args.traj, args.top)
    system = None
    if args.prmtop or args.system_xml:
        from lss_jax.systems.md import MDSystem

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


def demo(args) -> int:
    from pathlib import Path

    import jax

    from lss_jax.datasets import load_alanine_dipeptide
    from lss_jax.model.facade import LSS

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    quick = dict(encoder={"epochs": 5}, propagator={"epochs": 10}) if args.quick else {}
    decoder = {"iterations": 500} if args.quick else {}
    if args.decoder:  # else the system's own decoder
        decoder["kind"] = args.decoder
    changes = {**quick, **({"decoder": decoder} if decoder else {})}
    from lss_jax.systems.report import folding_systems

    systems, extra_info = folding_systems(), {}
    if args.more_md < 0 or (args.more_md and args.system not in systems):
        raise ValueError(f"--more-md {args.more_md}: only the protein systems ({', '.join(systems)}) simulate more "
                         "training runs, and N must be >= 0.")
    if args.system in systems:
        system = systems[args.system]
        train, independent = system.load("train"), system.load("independent")
        if args.system == "trp-cage":  # the paper's protocol (m = 3), as measured in docs/trp_cage.md
            from lss_jax.systems import trp_cage

            config = trp_cage.lss_config(seed=args.seed, **changes)
        else:  # what `lss-jax train` chooses from the data, at its defaults
            config, extra_info = _config_from_data(system, seed=args.seed, changes=changes)
        n_traj, n_steps = (20, 200) if args.quick else (100, train.n_frames // config.lag)  # as long as the training run
        if args.more_md:
            shipped = {seed for _, seed in system.shipped.values()}
            seeds = [s for s in range(1, args.more_md + len(shipped) + 1) if s not in shipped][: args.more_md]
            print(f"simulating {args.more_md} more training run(s) (seeds {', '.join(map(str, seeds))}; cached)")
            train = [train] + [system.simulate(train.n_frames, seed=s, progress=not args.no_progress) for s in seeds]
    else:
        from lss_jax.config import EncoderConfig, LSSConfig

        train, independent = load_alanine_dipeptide("train"), load_alanine_dipeptide("independent")
        config = LSSConfig(lag=5, encoder=EncoderConfig(latent_dim=2), seed=args.seed).replace(**changes)
        n_traj, n_steps = (50, 200) if args.quick else (100, 1000)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # printed below, from the model's record
        model = LSS(config=config).fit(train, progress=not args.no_progress)
    if extra_info:
        model._model = model.fetch_model().replace(info_json=json.dumps({**model.info, **extra_info}))
    model.save(out / "model")
    print(f"trained in {time.perf_counter() - start:.0f} s{_consistency_lines(model.info['consistency'])}")
    lss, latent = model.generate(jax.random.key(args.seed + 1), n_traj, n_steps, return_latent=True,
                                 progress=False if args.no_progress else None)
    _write_generated(lss, latent, out / "lss.xtc")
    metrics = _validation_report(model, independent, lss, latent, train=train, out=out / "report")
    _print_report(metrics, out / "report")
    if args.system in systems and model.config.decoder.kind != "knn":  # a generative protein decoder: its yardstick
        _retrieval_side_by_side(model, independent, latent, metrics, train=train, out=out / "report",
                                progress=False if args.no_progress else None)
    print(f"  total wall time         {time.perf_counter() - start:.1f} s")
    return 0


def _config_from_data(system, *, seed: int, changes: dict):
    """``(config, info)``: the configuration ``lss-jax train`` gives a shipped system's training run with no
    --protocol and no --lag: the protocol chosen from the topology (:func:`lss_jax.protocols.choose_protocol`) and the
    lag from the training features (``--lag auto``), each printed with its reason; ``seed`` and ``changes``
    (``--quick``, ``--decoder``) on top. ``info``: the choices, as the model records them."""
    from lss_jax.data.stream import load_training_data
    from lss_jax.protocols import protocol_config

    files = system.files()
    choice, chosen = _protocol("auto", [str(files["train"])], str(files["ca_pdb"]))
    config = protocol_config(choice.name, 1, {"seed": seed, **changes})
    trajs = load_training_data([str(files["train"])], str(files["ca_pdb"]), config)
    lag_choice = _choose_lag(trajs, 1)
    # what the model records, as `lss-jax train` does
    info = {"protocol": choice.as_info(chosen), "lag_choice": lag_choice.as_info(trajs.timestep)}
    return config.replace(lag=lag_choice.lag), info


def export(args) -> int:

    from lss_jax.generation.export import export_simulator
    from lss_jax.model.facade import LSS

    out = _out_path(args.out, what="the directory")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give a file name such as sim.jaxexport.")
    model = LSS.load(args.model)
    path = export_simulator(model, out, chunk_steps=args.chunk_steps,
                            platforms=tuple(args.platforms) if args.platforms else None)
    print(f"\nexported the propagator and decoder of {args.model}"
          f"\n  file        {path} ({path.stat().st_size / 2**20:.1f} MB)"
          f"\n  run it      python docs/examples/run_exported.py {path} --n-traj 10 --n-steps 1000 --seed 0"
          f"\n  needs       jax and numpy (and flatbuffers, which jax.export uses to read the file)")
    return 0


COMMANDS = {"four-well": four_well, "train": train, "generate": generate, "report": report, "demo": demo,
            "lagscan": lagscan, "adapt": adapt, "adapt-four-well": adapt_four_well, "export": export}


def _out_path(value: str, *, what: str = "the parent directory"):
    """``--out`` as a ``Path`` whose directory exists (else the one-line error that names it)."""
    from pathlib import Path

    out = Path(value)
    if not out.parent.exists():
        raise FileNotFoundError(f"{what} of --out ({out.parent}) does not exist; create it first.")
    return out
