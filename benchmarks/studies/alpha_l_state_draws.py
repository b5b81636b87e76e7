"""Where alanine dipeptide's α_L goes when the encoder changes (issue 28): the decoder's α_L structural state, drawn on
purpose, at arbitrary ψ and at the ψ of the training α_L frames.

For one setting (``LSS(lag=5, encoder={"latent_dim": m, "linear_floor": ...}, seed=...)`` on the shipped training
run) it prints the α_L state's weight (the classifier's mean on the training frames), and for 4000 draws of that
state's flow (10 Heun steps) conditioned on the ψ of random independent frames, then on the ψ of the training
α_L-basin frames (0 < φ < 120°): the share in the α_L basin and the share outside the decoder's support. The state's
field is given ψ itself, as before the decoder anchored a rare state's flow (since 2026-12-04 the decoder gives it
the nearest of its frames' latent points, and its redraws keep the state for their first half: docs/encoder.md).

    python benchmarks/studies/alpha_l_state_draws.py --seed 1 --dim 2 --linear-floor   # ~4 min on 2 CPU cores
    python benchmarks/studies/alpha_l_state_draws.py --seed 1 --dim 2                  # the plain SRV
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import mdtraj as md
import numpy as np

from lss_jax.benchmarking import benchmark_parser
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.decoder import features_to_xyz, support_ratio
from lss_jax.decoder.flow import integrate_flow
from lss_jax.model.facade import LSS


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__, out="unused (prints only)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dim", type=int, default=2, help="latent dimension")
    parser.add_argument("--linear-floor", action="store_true")
    parser.add_argument("--draws", type=int, default=4000)
    args = parser.parse_args(argv)
    train, independent = load_alanine_dipeptide("train"), load_alanine_dipeptide("independent")
    model = LSS(lag=5, encoder={"latent_dim": args.dim, "linear_floor": args.linear_floor},
                seed=args.seed).fit(train, progress=False).fetch_model()
    net = model.decoder.network  # a StateFlow
    topology = train.atom_slice(model.atom_indices).topology
    u_train, u_ind = (model.to_unit(model.encode([t])[0]) for t in (train, independent))
    phi = md.compute_phi(train)[1][:, 0]
    basin = np.flatnonzero((phi > 0) & (phi < np.radians(120)))
    weights = np.asarray(jax.nn.softmax(net.classifier(u_train), -1)).mean(0)
    state = int(np.argmin(weights))
    rng = np.random.default_rng(0)
    print(f"seed {args.seed}, m {args.dim}, linear floor {args.linear_floor}: state {state}, weight {weights[state]:.5f}")
    for label, cond in (("psi of random independent frames", u_ind[rng.choice(len(u_ind), args.draws)]),
                        ("psi of training alpha_L-basin frames", u_train[rng.choice(basin, args.draws)])):
        z = jax.random.normal(jax.random.key(1), (args.draws, net.dim))
        onehot = jax.nn.one_hot(jnp.full(args.draws, state), net.n_states)
        x = integrate_flow(net.field, z, jnp.concatenate([jnp.asarray(cond), onehot], -1), n_steps=10, solver="heun")
        xyz = np.array(features_to_xyz(model.decoder.coordinates, x), dtype=np.float32)
        phi_d = md.compute_phi(md.Trajectory(xyz, topology))[1][:, 0]
        outside = np.asarray(support_ratio(model.decoder.support, jnp.asarray(xyz))) < 1
        print(f"  {label}: in the alpha_L basin {np.mean((phi_d > 0) & (phi_d < np.radians(120))):.3f}, "
              f"outside the support {outside.mean():.3f} (redraws {model.decoder.redraws})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
