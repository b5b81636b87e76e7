"""The ``lss-jax`` argument parser: every command, option and help text."""

from __future__ import annotations

import argparse

from lss_jax.config import DECODERS
from lss_jax.protocols import PROTOCOLS

EXAMPLES = """examples:
  lss-jax demo --out runs/demo                      # alanine dipeptide: train, generate, validate (built-in data)
  lss-jax four-well --out runs/four-well            # the paper's four-well validation (~2.5 min on 2 CPU cores)
  lss-jax four-well --out runs/fw-quick --quick     # smoke run, < 1 min
  lss-jax train --traj md1.xtc md2.xtc --top system.pdb --lag 5 --out model/
  lss-jax train --traj md1.xtc --top system.pdb --lag auto --out model/   # the lag chosen from the data
  lss-jax generate --model model/ --n-traj 100 --n-steps 1000 --seed 1 --out lss.xtc
  lss-jax report --model model/ --md independent.xtc --lss lss.xtc --top system.pdb --out report/
  lss-jax lagscan --traj md1.xtc --top system.pdb --lags 1 2 5 10 20 --out its/
  lss-jax export --model model/ --out sim.jaxexport     # the simulator for jax + numpy alone
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


def _lag(text: str):
    """``--lag``: a positive integer, or ``auto`` (chosen from the data by lss_jax.analysis.lagchoice)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a positive integer or "auto", got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _command(sub, name: str, help_: str, description: str) -> argparse.ArgumentParser:
    """One subcommand's parser, with the shared examples epilog."""
    return sub.add_parser(name, help=help_, description=description, epilog=EXAMPLES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_four_well(sub) -> None:
    fw = _command(sub, "four-well", "the paper's four-well validation against the exact Smoluchowski reference",
                  "Brownian dynamics in the four-well potential, an exact reference from the discretized "
                  "Smoluchowski generator, an MDN propagator, >= 1000 generated trajectories, and a "
                  "comparison (free energy, implied timescales, transition density). Writes metrics.json, "
                  "bd_trajectory.npy, lss_trajectories.npy, profiles.npz and PNG figures to --out.")
    fw.add_argument("--out", required=True, help="output directory (created if missing)")
    fw.add_argument("--quick", action="store_true", help="small settings for a smoke run (<= 2 minutes on 2 cores)")
    fw.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    fw.add_argument("--n-traj", type=_positive_int, help="generated trajectories (default 1024)")
    fw.add_argument("--n-steps", type=_positive_int, help="LSS steps per trajectory (default: training length in τ)")
    fw.add_argument("--no-progress", action="store_true", help="hide progress bars")
    fw.add_argument("--config", help=CONFIG_HELP)


def _add_train(sub) -> None:
    tr = _command(sub, "train", "train an LSS (encoder, propagator, decoder) on MD trajectories",
                    "Featurize the trajectories, train the SRV encoder, the MDN propagator and the decoder (conditional "
                    "flow matching in the peptide protocol, retrieval in the protein one; kind = \"wgan\" under "
                    "[decoder] in --config for the paper's cWGAN-GP, \"flow\" for flow matching, \"knn\" for "
                    "retrieval, \"chain\" for flow matching on a chain's Cartesian Ca coordinates, \"meanflow\" for a flow "
                    "trained to be sampled in 2 steps), and save the model "
                    "directory (format documented in lss_jax.model.io). The settings start from a protocol "
                    "that the topology chooses (peptide, protein or Ca-only; printed with the reason, recorded in the "
                    "model, --protocol to give it); --config changes any of its fields.")
    tr.add_argument("--traj", nargs="+", required=True, help="trajectory files (any mdtraj format)")
    tr.add_argument("--top", help="topology file (PDB, prmtop, ...), needed for xtc/dcd/...")
    tr.add_argument("--lag", type=_lag, required=True, metavar="N|auto",
                    help="lag in frames, or auto: the shortest lag of 1, 2, 3, 5, 8, 12, 20, ... frames at which the "
                         "leading implied timescales (linear TICA of the features, block-bootstrap errors) agree with "
                         "the next two lags within 2 standard errors; printed with the evidence, drawn in "
                         "OUT/lag_choice.png, recorded in the model; refused when the data are too short to decide")
    tr.add_argument("--out", required=True, help="model directory to write")
    tr.add_argument("--config", help=CONFIG_HELP + " Its tables [data], [encoder], [propagator] and [decoder] set the "
                    "fields of lss_jax.LSSConfig's sections (e.g. [encoder] epochs = 10).")
    tr.add_argument("--protocol", choices=("auto", *PROTOCOLS), default="auto",
                    help="the configuration the [data], [encoder], [propagator], [decoder] fields of --config change "
                         "(lss_jax.protocols): peptide (torsions and heavy-atom distances, flow decoder on the heavy "
                         "atoms: the defaults), protein (Ca distances and Ca pseudo-torsions, knn decoder on the Ca "
                         "atoms, cross-fitting), ca (the same, for Ca-only topologies); auto (default): chosen from "
                         "the topology and printed with the reason")
    tr.add_argument("--latent-dim", type=_positive_int, help="latent dimension (encoder.latent_dim; default: eigenvalue gap)")
    tr.add_argument("--stride", type=_positive_int, default=1, help="load every n-th frame (the lag counts strided frames)")
    tr.add_argument("--seed", type=int, default=None, help="PRNG seed (default 0 or the config's)")
    tr.add_argument("--no-progress", action="store_true", help="hide progress bars")
    tr.add_argument("--checkpoint-every", type=_positive_int, default=1,
                    help="save the training state to OUT.checkpoints/ every N epochs (decoder: N x 250 iterations); "
                         "removed once the model is saved (default 1)")
    tr.add_argument("--resume", action="store_true",
                    help="continue an interrupted run from OUT.checkpoints/ (same data and settings); the result is "
                         "the same as an uninterrupted run")


def _add_generate(sub) -> None:
    ge = _command(sub, "generate", "generate trajectories with a trained LSS",
                    "Roll out latent trajectories and decode them chunk by chunk (memory is set by the chunk, not "
                    "the trajectory length). OUT with a trajectory extension (.xtc, .dcd, .h5, .nc, .trr, ...) gets "
                    "all trajectories in one file, trajectory-major (trajectory b is frames b*n .. (b+1)*n-1), plus "
                    "OUT's stem + '.pdb' (decoded atoms) and + '.latent.npy' ([n_traj, n_frames, latent_dim]). OUT "
                    "without an extension is a directory of chunk files (format in lss_jax.generation.simulate; read it with "
                    "lss_jax.generation.simulate.load_generated), for runs larger than memory. An interrupted run continues "
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
    ge.add_argument("--host-devices", type=_positive_int,
                    help="on a CPU, give XLA this many host devices (one per core) so that the rollout is sharded "
                         "over all cores (decoding too: its blocks go to the devices in turn); see lss_jax.use_every_core")
    ge.add_argument("--distributed", action="store_true",
                    help="multi-host: call jax.distributed.initialize() and generate this process's share of the "
                         "trajectories into OUT/process-PPP/ (OUT must be a directory)")
    ge.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ge.add_argument("--config", help=CONFIG_HELP)


def _add_report(sub) -> None:
    rp = _command(sub, "report", "validate generated trajectories against independent MD",
                    "Free energies, implied timescales, structure quality, novelty and TICA, as metrics.json "
                    "plus PNG figures in --out.")
    rp.add_argument("--model", required=True, help="model directory")
    rp.add_argument("--md", nargs="+", required=True, help="independent MD trajectories (training topology)")
    rp.add_argument("--lss", nargs="+", required=True, help="decoded LSS trajectories from `lss-jax generate`")
    rp.add_argument("--top", help="topology of the MD trajectories")
    rp.add_argument("--train", nargs="+", help="training trajectories, for the novelty check")
    rp.add_argument("--out", required=True, help="report directory")
    rp.add_argument("--seed", type=int, default=0, help="seed of the frame subsampling (default 0)")
    rp.add_argument("--retrieval", action="store_true",
                    help="also decode the same latent trajectories by retrieval from --train (each frame one of the "
                         "training frames nearest in latent space: the yardstick of a generative decoder), report "
                         "them in OUT/retrieval and print both side by side")
    rp.add_argument("--config", help=CONFIG_HELP)


def _add_lagscan(sub) -> None:
    ls = _command(sub, "lagscan", "implied timescales of SRVs trained at several lags, to choose the lag",
                    "Train one SRV encoder per lag and plot its implied timescales against the lag (its.png, its.json "
                    "in --out). Pick the shortest lag from which the slow timescales stay flat.")
    ls.add_argument("--traj", nargs="+", required=True, help="trajectory files")
    ls.add_argument("--top", help="topology file")
    ls.add_argument("--lags", type=_positive_int, nargs="+", required=True, help="lags in frames")
    ls.add_argument("--n-outputs", type=_positive_int, default=3, help="eigenfunctions per SRV (default 3)")
    ls.add_argument("--torsions", nargs="*", default=["phi", "psi", "chi"],
                    help="torsion features as in lss_jax.config.DataConfig (default phi psi chi; 'ca' for Cα pseudo-torsions; "
                         "none: give the option without values)")
    ls.add_argument("--distances", default="heavy",
                    help="distance features: heavy, ca, none or an mdtraj selection (default heavy)")
    ls.add_argument("--epochs", type=_positive_int, default=30, help="maximum epochs per SRV (default 30)")
    ls.add_argument("--stride", type=_positive_int, default=1, help="load every n-th frame")
    ls.add_argument("--seed", type=int, default=0, help="PRNG seed")
    ls.add_argument("--out", required=True, help="output directory")
    ls.add_argument("--config", help=CONFIG_HELP)


def _add_adapt(sub) -> None:
    ad = _command(sub, "adapt", "adaptive sampling: pick where to run MD next, run it, retrain (N rounds)",
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
    ad.add_argument("--prmtop", help="Amber prmtop of the system (OBC2 implicit solvent protocol, see lss_jax.systems.md)")
    ad.add_argument("--system-xml", help="serialized OpenMM System XML (used as is)")
    ad.add_argument("--pdb", help="PDB matching the system (default --top)")
    ad.add_argument("--platform", default="Reference", help="OpenMM platform (default Reference)")
    ad.add_argument("--seed", type=int, default=0, help="PRNG and MD seed")
    ad.add_argument("--out", required=True, help="output directory of the rounds")
    ad.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ad.add_argument("--config", help=CONFIG_HELP)


def _add_demo(sub) -> None:
    de = _command(sub, "demo", "train, generate and validate end to end on built-in data (alanine dipeptide, Trp-cage, villin)",
                    "alanine-dipeptide (default): train on the shipped 50 ns trajectory (seed 1), generate 100 x 1000 "
                    "steps, and validate against the shipped independent 50 ns trajectory (seed 2). trp-cage: the "
                    "paper's protein protocol on the shipped Cα Gō-model trajectories (Cα distances and pseudo-torsions, "
                    "m = 3, C = 24, a Cα decoder; 100 generated trajectories as long as the training data; folding "
                    "analysis against the independent run). villin: the villin headpiece HP35 Cα Gō model (three-helix "
                    "bundle, 35 residues) with the protocol and the lag lss-jax train chooses from the data, at its "
                    "defaults.")
    de.add_argument("--system", choices=("alanine-dipeptide", "trp-cage", "villin"), default="alanine-dipeptide",
                    help="which built-in system (default alanine-dipeptide)")
    de.add_argument("--out", required=True, help="output directory")
    de.add_argument("--quick", action="store_true", help="small settings for a smoke run")
    de.add_argument("--seed", type=int, default=0, help="PRNG seed")
    de.add_argument("--decoder", choices=DECODERS, default=None,
                    help="flow (conditional flow matching; the alanine dipeptide default), wgan (the paper's cWGAN-GP), "
                         "knn (retrieval of training frames: MD's own structures, the yardstick), chain (flow matching "
                         "on a chain's Cartesian Ca coordinates with a transformer over beads; the trp-cage default) "
                         "or meanflow (the flow trained to be sampled in 2 steps, ~6x its frames/s; docs/decoder.md)")
    de.add_argument("--more-md", type=int, default=0, metavar="N",
                    help="trp-cage, villin: also train on N more runs of the shipped protocol, simulated here with OpenMM "
                         "(seeds 3, 4, ...; ~3 min each on one core, cached; needs the md extra)")
    de.add_argument("--no-progress", action="store_true", help="hide progress bars")
    de.add_argument("--config", help=CONFIG_HELP)


def _add_export(sub) -> None:
    ex = _command(sub, "export", "write the trained propagator and decoder as serialized StableHLO (jax.export)",
                    "One .jaxexport file that generates decoded frames with only jax and numpy installed "
                    "(docs/examples/run_exported.py runs it); the same seed gives the frames of lss-jax generate "
                    "on the same machine. Format and calling convention: lss_jax.generation.export.")
    ex.add_argument("--model", required=True, help="model directory from `lss-jax train`")
    ex.add_argument("--out", required=True, help="output file (e.g. sim.jaxexport)")
    ex.add_argument("--chunk-steps", type=_positive_int, default=100,
                    help="propagator steps per call of the exported rollout (default 100)")
    ex.add_argument("--platforms", nargs="+", help="platforms to lower for (default: this machine's, e.g. cpu cuda)")
    ex.add_argument("--config", help=CONFIG_HELP)


def _add_adapt_four_well(sub) -> None:
    af = _command(sub, "adapt-four-well", "adaptive sampling vs plain MD continuation on the four-well potential",
                    "Start from a BD run that saw only the two left wells; each round trains an MDN ensemble, seeds "
                    "short BD runs where the data are thin and the kinetics uncertain (the rule of lss-jax adapt), and scores an LSS against the "
                    "exact free energy; plain continuation of the first run with the same BD steps is the baseline "
                    "(lss_jax.adaptive.four_well). Writes metrics.json, trajectories.npz and adaptive_four_well.png "
                    "to --out.")
    af.add_argument("--out", required=True, help="output directory (created if missing)")
    af.add_argument("--quick", action="store_true", help="tiny settings for a smoke run (about 1 minute on 2 cores)")
    af.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    af.add_argument("--rounds", type=int, help="adaptive rounds (default 12; --quick: 1)")
    af.add_argument("--beta", type=float, help="target density exponent of the acquisition rule (default 0, least "
                                               "counts; 1: the LSS's equilibrium density; see lss-jax adapt)")
    af.add_argument("--no-progress", action="store_true", help="hide progress bars")
    af.add_argument("--config", help=CONFIG_HELP)


_COMMANDS = (_add_four_well, _add_train, _add_generate, _add_report, _add_lagscan, _add_adapt, _add_demo, _add_export,
             _add_adapt_four_well)


def build_parser() -> argparse.ArgumentParser:
    """The ``lss-jax`` parser: global options and one subparser per command (``_add_<command>``)."""
    parser = argparse.ArgumentParser(
        prog="lss-jax",
        description="Molecular latent space simulators (Sidky, Chen & Ferguson 2020) in JAX.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command")
    for add in _COMMANDS:
        add(sub)
    parser.subcommands = sub.choices
    return parser
