"""Generate decoded frames from an exported LSS (``lss-jax export``) with only jax and numpy installed.

    python run_exported.py sim.jaxexport --n-traj 10 --n-steps 1000 --seed 1 --out frames.npz

Writes ``xyz`` ``[n_traj, n_steps, n_atoms, 3]`` (nm), ``latent`` ``[n_traj, n_steps, latent_dim]`` and
``unit`` (the propagator's unit box) to ``--out``, and the decoded atoms as ``<out stem>.pdb``. With the same
seed these are the frames of ``lss-jax generate --seed S`` on the same machine, bit for bit. The calling
convention of the functions in the file is documented in ``lss_jax/generation/export.py``.
"""

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


def load(path):
    """The exported functions, their weight lists, the start points and the metadata of a ``.jaxexport`` file."""
    f = np.load(path, allow_pickle=False)
    meta = json.loads(str(f["meta"]))
    if meta.get("format") != "lss_jax.simulator" or meta.get("format_version", 0) != 2:
        raise SystemExit(f"{path} is not an lss_jax simulator this script reads (format {meta.get('format')!r}).")
    fns = {name: jax.export.deserialize(bytearray(f[name].tobytes())) for name in ("rollout", "decode", "from_unit")}
    prop = [jnp.asarray(f[f"propagator_{i}"]) for i in range(meta["n_propagator_leaves"])]
    dec = [jnp.asarray(f[f"decoder_{i}"]) for i in range(meta["n_decoder_leaves"])]
    return fns, prop, dec, np.asarray(f["start_points"]), str(f["topology_pdb"]), meta


def generate(path, n_traj: int, n_steps: int, seed: int):
    """``(xyz, latent, unit, pdb_text)`` of ``n_traj`` trajectories of ``n_steps`` steps from random start points."""
    fns, prop, dec, start_points, pdb, meta = load(path)
    key = jax.random.key(seed, impl=meta["key_impl"])
    k_start, k_roll, k_dec = jax.random.split(key, 3)
    u = jnp.asarray(start_points[np.asarray(jax.random.randint(k_start, (n_traj,), 0, len(start_points)))])
    ids = jnp.arange(n_traj, dtype=jnp.int32)
    chunk, frames = meta["chunk_steps"], []
    for first in range(0, n_steps, chunk):  # each call continues from the last frame at the next global step
        block = fns["rollout"].call(jax.random.key_data(k_roll), prop, u, ids, jnp.int32(first))
        frames.append(np.asarray(block))
        u = block[:, -1]
    unit = np.concatenate(frames, axis=1)[:, :n_steps]
    latent = np.asarray(fns["from_unit"].call(jnp.asarray(unit.reshape(-1, meta["latent_dim"])))).reshape(unit.shape)
    rows_u = unit.reshape(-1, meta["latent_dim"])
    rows_b = np.repeat(np.arange(n_traj, dtype=np.int32), n_steps)
    rows_t = np.tile(np.arange(n_steps, dtype=np.int32), n_traj)
    size = meta["decode_block"]

    def decode(idx, attempt):  # fixed blocks: a frame's bits do not depend on its neighbours
        xyz, ratio = np.empty((len(idx), meta["n_atoms"], 3), np.float32), np.empty(len(idx), np.float32)
        for s in range(0, len(idx), size):
            sel = idx[s : s + size]
            pad = lambda a: np.pad(a[sel], [(0, size - len(sel))] + [(0, 0)] * (a.ndim - 1))  # noqa: E731
            out, r = fns["decode"].call(jax.random.key_data(k_dec), dec, jnp.asarray(pad(rows_u)),
                                        jnp.asarray(pad(rows_b)), jnp.asarray(pad(rows_t)),
                                        jnp.full(size, attempt, jnp.int32))
            xyz[s : s + len(sel)], ratio[s : s + len(sel)] = np.asarray(out)[: len(sel)], np.asarray(r)[: len(sel)]
        return xyz, ratio

    xyz, best = decode(np.arange(len(rows_u)), 0)
    todo = np.flatnonzero(best < 1.0)  # frames outside the training data's support: draw them again
    for attempt in range(1, meta["redraws"] + 1):
        if not len(todo):
            break
        new, ratio = decode(todo, attempt)
        better = ratio > best[todo]
        xyz[todo[better]], best[todo[better]] = new[better], ratio[better]
        todo = todo[ratio < 1.0]
    return xyz.reshape(n_traj, n_steps, meta["n_atoms"], 3), latent, unit, pdb


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .jaxexport file from `lss-jax export`")
    parser.add_argument("--n-traj", type=int, default=10)
    parser.add_argument("--n-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="frames.npz")
    args = parser.parse_args()
    xyz, latent, unit, pdb = generate(args.model, args.n_traj, args.n_steps, args.seed)
    out = Path(args.out)
    np.savez(out, xyz=xyz, latent=latent, unit=unit)
    out.with_suffix(".pdb").write_text(pdb)
    print(f"wrote {out} ({args.n_traj} x {args.n_steps} frames of {xyz.shape[2]} atoms) and {out.with_suffix('.pdb')}")


if __name__ == "__main__":
    main()
