"""How the decoder's sampling settings score on one trained model: the flow's own sampler against students distilled
with other budgets, on a round trip and a full LSS run against independent MD (docs/decoder.md).

The model is loaded (``--model``, trained with ``decoder.distill_steps = 0``, the flow itself); its training frames
(``--traj``) give the latent points the students are distilled on, as ``fit_decoder`` does; ``--independent`` is MD
the model never saw. Every variant decodes the same latent trajectories (same generation key) and the same
independent frames (same round-trip key), so the differences between variants are the decoder's alone. Each
variant is ``teacher``; ``heunK``, ``midpointK`` or ``rk4_K``, the trained flow integrated with ``K`` steps of that solver;
``distillK[,setting=value...]``: the flow distilled into ``K`` Euler steps by
:func:`lss_jax.decoder.distill_decoder` with those settings (``iterations``, ``draws``, ``learning_rate``, ...),
from the key ``fit_decoder`` uses (``fold_in(key(seed), 2)``) unless ``--distill-seed`` says otherwise; or
``hiddenW1xW2x...``: a flow decoder of those hidden widths trained from scratch on the model's own frames and latent
points with the key and settings ``fit_lss`` gives its decoder (``hidden256x256x256`` reproduces the model's
decoder bit for bit; ``hidden256x256x256,seed=S``: the same decoder from the key of seed ``S``); or ``meanflowK``: a mean-flow decoder (``decoder.kind = "meanflow"``, a flow trained to be
sampled in few steps, :mod:`lss_jax.decoder.meanflow`) trained the same way once per run and sampled with ``K``
average-velocity steps (``meanflowK,setting=value...``: with those decoder settings, e.g. ``iterations`` or
``hidden=128x128x128``, or
``seed``: trained from the key ``fit_lss`` gives that seed). Each variant's decode throughput (frames/s on 65 536
random latent points, best of two, after
compiling) is measured in the same run.

The 100 ns alanine dipeptide validation (docs/alanine_dipeptide.md) trains the model with
``lss-jax train --traj ala2-dev-100ns.xtc --top alanine-dipeptide.pdb --lag 10 --config teacher.toml --out M``
(``teacher.toml``: ``[encoder] latent_dim = 2``, ``[decoder] distill_steps = 0``); the independent run is
``lss_jax.datasets.simulate_alanine_dipeptide(100_000, seed=2)``.

    python benchmarks/studies/distill_variants.py --model M --traj ala2-dev-100ns.xtc --top alanine-dipeptide.pdb \\
        --independent ala2-seed2.xtc teacher distill1 distill1,iterations=60000 distill1,iterations=60000,draws=10 distill2
    python benchmarks/studies/distill_variants.py --model M ... --out steps.json teacher heun5 heun4 heun3 heun2 \\
        hidden128x128x128 hidden64x64x64
    python benchmarks/studies/distill_variants.py --model M ... --out meanflow.json teacher distill1 meanflow1 meanflow2
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import jax
import mdtraj as md
import numpy as np

from lss_jax.analysis.molecular import compare_structures, comparison_summary, decoder_round_trip
from lss_jax.benchmarking import benchmark_parser, decode_rate, machine_facts, refit_decoder, write_results
from lss_jax.data.pairs import split_trajectories
from lss_jax.decoder import distill_decoder
from lss_jax.model.facade import LSS

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _value(text: str):
    if re.fullmatch(r"\d+(?:x\d+)+", text):  # hidden widths: 128x128x128
        return tuple(int(w) for w in text.split("x"))
    try:
        return int(text)
    except ValueError:
        return float(text)


_MEAN_FLOWS: dict = {}  # one mean-flow decoder per model and run, sampled with every step count asked for


def variant(model, name: str, u_train, u_val, seed: int, train=None):
    """The model with its decoder as ``name`` says, and the seconds it took to make; ``train``: the model's training
    MD, for ``hidden...`` and ``meanflow...`` variants."""
    start = time.perf_counter()
    if name == "teacher":
        return model, 0.0
    solver = re.fullmatch(r"(heun|midpoint|rk4)_?(\d+)", name)
    if solver:
        return model.replace(decoder=model.decoder.replace(flow_solver=solver[1], flow_steps=int(solver[2]))), 0.0
    head, *settings = name.split(",")
    kwargs = {k: _value(v) for k, v in (s.split("=", 1) for s in settings)}
    widths = re.fullmatch(r"hidden(\d+(?:x\d+)*)", head)
    if widths:
        decoder = refit_decoder(model, train, hidden=tuple(int(w) for w in widths[1].split("x")), **kwargs)
        return model.replace(decoder=decoder), time.perf_counter() - start
    mean_flow = re.fullmatch(r"meanflow(\d+)", head)
    if mean_flow:
        key = (id(model), tuple(settings))
        if key not in _MEAN_FLOWS:
            changes = {**dict(kind="meanflow", hidden=None, learning_rate=None, epochs=None, lr_decay=None), **kwargs}
            _MEAN_FLOWS[key] = (refit_decoder(model, train, **changes), time.perf_counter() - start)
        decoder, seconds = _MEAN_FLOWS[key]
        return model.replace(decoder=decoder.replace(flow_steps=int(mean_flow[1]))), seconds
    if not head.startswith("distill") or not head[7:].isdigit():
        raise SystemExit(f"unknown variant {name!r}: use teacher, heunK, midpointK, rk4_K, hiddenW1xW2..., meanflowK "
                         "or distillK[,setting=value...].")
    decoder = distill_decoder(jax.random.fold_in(jax.random.key(seed), 2), model.decoder, u_train, u_val,
                              n_steps=int(head[7:]), progress=False, **kwargs)
    return model.replace(decoder=decoder), time.perf_counter() - start


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/distill_variants-<backend>.json)")
    parser.add_argument("variants", nargs="+", help="teacher, heunK, midpointK, rk4_K, hiddenW1xW2..., meanflowK, "
                                                       "distillK[,setting=value...]")
    parser.add_argument("--model", required=True, help="a saved model whose decoder is a flow (distill_steps = 0)")
    parser.add_argument("--traj", required=True, help="the model's training trajectory")
    parser.add_argument("--top", required=True, help="its topology (PDB)")
    parser.add_argument("--independent", required=True, help="independent MD with the same topology")
    parser.add_argument("--n-traj", type=int, default=200)
    parser.add_argument("--n-steps", type=int, default=1000)
    parser.add_argument("--distill-seed", type=int, default=None, help="default: the model's seed")
    args = parser.parse_args(argv)

    model = LSS.load(args.model).fetch_model()
    if model.decoder.flow_steps == 1 and model.decoder.flow_solver == "euler":
        raise SystemExit(f"{args.model} decodes with a distilled student already; train it with decoder.distill_steps = 0.")
    train = md.load(args.traj, top=args.top)
    independent = md.load(args.independent, top=args.top)
    indep_h = independent.atom_slice(independent.topology.select("not element H"))
    u = [model.to_unit(p) for p in model.encode([train])]
    bench_u = np.asarray(jax.random.uniform(jax.random.key(9), (65_536, model.latent_dim)), np.float32)
    u_train, u_val = (np.concatenate(part) for part in split_trajectories(u, model.config.data.val_fraction))
    seed = model.config.seed if args.distill_seed is None else args.distill_seed
    results = {"benchmark": "distill_variants", "backend": jax.default_backend(), "machine": machine_facts(),
               "jax": jax.__version__, "model": Path(args.model).name, "traj": Path(args.traj).name,
               "independent": Path(args.independent).name, "n_trajectories": args.n_traj, "n_steps": args.n_steps,
               "variants": {}}
    path = args.out or RESULTS / f"distill_variants-{jax.default_backend()}.json"
    for name in args.variants:
        decoded, seconds = variant(model, name, u_train, u_val, seed, train=train)
        fps = decode_rate(decoded, bench_u, repeats=2)
        rt = comparison_summary(compare_structures(indep_h, decoder_round_trip(jax.random.key(3), decoded, independent),
                                                   seed=5))
        lss = comparison_summary(compare_structures(
            indep_h, decoded.generate(jax.random.key(1), args.n_traj, args.n_steps, progress=False), seed=5))
        results["variants"][name] = {"make_seconds": seconds, "decode_frames_per_second": fps, "round_trip": rt,
                                     "lss": lss}
        print(f"{name}: made in {seconds:.0f} s, {fps:,.0f} frames/s | F(phi, psi) round trip {rt['f_phi_psi_rmse_kT']:.3f} kT, LSS "
              f"{lss['f_phi_psi_rmse_kT']:.3f} kT | alpha_L {rt['alpha_l']:.4f} / {lss['alpha_l']:.4f} | clash frames "
              f"{rt['clash_frames']} / {lss['clash_frames']}", flush=True)
        write_results(path, results)  # after every variant: a long run keeps what it has
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
