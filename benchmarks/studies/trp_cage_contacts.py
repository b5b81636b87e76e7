"""Which native contacts make a Trp-cage decoder's extra folding transitions? decode(encode(independent MD)) with a saved
model's decoder and with retrieval on the same latent points, frames one lag (50 ps) apart, against the run itself:
per contact, the share of frames where it is formed (r < 1.2 σ) and how often it changes from one frame to the next;
across contacts, how correlated they are within a frame; and Q's spread, tails and transitions. With
``--temperatures``, the chain decoder at each prior temperature, and beside each row the decoder's conditional
fidelity (``lss_jax.analysis.conditional``: at 200 independent-run points, the spread, bias and slope in ψ of Q,
the pair distances and Rg against the run's nearest frames).

The model is a saved LSS whose decoder is the chain decoder at its own defaults (structural states on the
distances, 50 epochs; the study predates the protocol's chain decoder on native contact maps), e.g.

    python -c "import jax; from lss_jax import fit_lss; from lss_jax.systems import trp_cage as tc; \\
        fit_lss(jax.random.key(0), [tc.load_trp_cage('train')], \\
                tc.lss_config(seed=0, decoder={'kind': 'chain', 'redraws': 0, 'state_features': 'distances', \\
                                               'contact_reference': '', 'epochs': None, 'temperature': None}), \\
                progress=False).save('M')"
    python benchmarks/studies/trp_cage_contacts.py --model M     # ~4 min -> results/trp_cage_contacts-cpu.json
    python benchmarks/studies/trp_cage_contacts.py --model M --temperatures 0.7 1.0 \
        --out benchmarks/results/trp_cage_contacts_temperature-cpu.json                   # ~8 min
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from lss_jax.analysis.conditional import conditional_fidelity
from lss_jax.benchmarking import benchmark_parser, machine_facts, write_results
from lss_jax.decoder import DecoderConfig, fit_decoder
from lss_jax.model.facade import LSS
from lss_jax.systems import trp_cage as tc

RESULTS = Path(__file__).resolve().parents[1] / "results"
CONDITIONAL = ("sd_ratio", "bias", "bias_floor", "slope_ratio", "w1_ratio")  # conditional fidelity's numbers kept


def contact_numbers(xyz: np.ndarray, pairs: np.ndarray, sigma: np.ndarray, frame_ps: float) -> dict:
    """Per-contact formed share and change rate, their mean within-frame correlation, Q's spread and transitions of
    ``xyz [T, n, 3]`` (frames one lag apart)."""
    formed = np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=-1) < tc.Q_TOLERANCE * sigma
    corr = np.corrcoef(formed.T.astype(float))[~np.eye(len(pairs), dtype=bool)]
    q = tc.fraction_native_contacts(xyz)
    folding = tc.folding_metrics([xyz], xyz[None], md_frame_time=frame_ps, lss_frame_time=frame_ps)
    return {"formed": formed.mean(0).tolist(), "changes_per_lag": (formed[1:] != formed[:-1]).mean(0).tolist(),
            "within_frame_correlation": float(np.nanmean(corr)), "q_sd": float(q.std()),
            "q_below_0.3": float(np.mean(q < 0.3)), "q_above_0.7": float(np.mean(q > 0.7)),
            "transitions_per_us": folding["transitions_per_us"]["lss"]}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="JSON path (default benchmarks/results/trp_cage_contacts-cpu.json)")
    parser.add_argument("--model", required=True, help="a saved Trp-cage LSS (its decoder is the one examined)")
    parser.add_argument("--temperatures", type=float, nargs="*", default=None,
                        help="prior temperatures to decode at (a chain decoder's; default: the model's own)")
    args = parser.parse_args(argv)
    model = LSS.load(args.model).fetch_model()
    train, independent = tc.load_trp_cage("train"), tc.load_trp_cage("independent")
    lag = tc.lss_config().lag
    psi = model.encode(independent)
    knn, _ = fit_decoder(jax.random.key(0), train.xyz, model.to_unit(model.encode(train)), topology=train.topology,
                         config=DecoderConfig(kind="knn", redraws=0), progress=False)
    contacts = tc.native_contacts()
    pairs, sigma = np.asarray(contacts.pairs), np.asarray(contacts.distances)
    frame_ps = lag * float(independent.timestep)
    rows = {"md": contact_numbers(independent.xyz[::lag], pairs, sigma, frame_ps)}
    decoders = [(model.decoder.kind, model)]
    field = getattr(model.decoder.network, "field", model.decoder.network)
    for temperature in args.temperatures or []:
        if not hasattr(field, "temperature"):
            parser.error(f"--temperatures needs a chain decoder; the model's is {model.decoder.kind!r}.")
        hot = model.replace(decoder=model.decoder.replace(network=nnx.clone(model.decoder.network)))
        getattr(hot.decoder.network, "field", hot.decoder.network).temperature = temperature
        decoders.append((f"{model.decoder.kind} T={temperature:g}", hot))
    for name, decoding in (*decoders[1 if args.temperatures else 0:], ("knn", model.replace(decoder=knn))):
        rows[name] = contact_numbers(decoding.decode(jax.random.key(7), psi[None])[0][::lag], pairs, sigma, frame_ps)
        fidelity = conditional_fidelity(jax.random.key(0), decoding, [independent], q_fn=tc.fraction_native_contacts,
                                        seed=0)
        rows[name]["conditional"] = {observable: {k: fidelity[observable][k] for k in CONDITIONAL}
                                     for observable in ("q", "pair_distances_nm", "radius_of_gyration_nm")}
    for name, row in rows.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)), flush=True)
        for observable, numbers in row.get("conditional", {}).items():
            print(f"    {observable}: " + ", ".join(f"{k} {v:.3f}" for k, v in numbers.items()), flush=True)
    write_results(args.out or RESULTS / "trp_cage_contacts-cpu.json", {
        "benchmark": "trp_cage_contacts", "description": __doc__.split("\n")[0], "model": Path(args.model).name,
        "contacts": pairs.tolist(), "rows": rows, "machine": machine_facts(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
