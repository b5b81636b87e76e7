"""The ``lss-jax`` command line."""

from __future__ import annotations

import argparse
import sys
import time

EXAMPLES = """examples:
  lss-jax four-well --out runs/four-well            # the paper's protocol (~10 min on 2 CPU cores)
  lss-jax four-well --out runs/fw-quick --quick     # smoke run, <= 2 min
"""


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
        f"\n  implied timescales exact          {fmt(ts['exact'])}"
        f"\n                     exact MSM(τ)   {fmt(ts['exact_msm'])}"
        f"\n                     BD             {fmt(ts['bd'])}"
        f"\n                     LSS            {fmt(ts['lss'])}"
        f"\n  t1 relative error                 {m['t1_relative_error']:.1%}"
        f"\n  transition density L1             {m['transition_density_l1']:.3f}"
        f"\n  generated                         {m['n_trajectories_generated']} x {m['n_lss_steps_per_trajectory']:,} steps"
        f"\n  wall time                         {time.perf_counter() - start:.1f} s"
        f"\n  outputs                           {args.out}/metrics.json and *.png"
    )
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from lss_jax import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {"four-well": _four_well}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, FloatingPointError, OSError) as err:
        if args.debug:
            raise
        print(f"lss-jax {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lss-jax {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
