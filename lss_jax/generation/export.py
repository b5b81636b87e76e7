"""A trained simulator in a box: the propagator and the decoder as serialized StableHLO (``jax.export``).

``lss-jax export --model M --out sim.jaxexport`` writes one file that generates decoded frames with only
``jax`` and ``numpy`` installed (no lss_jax, flax or mdtraj): the paper's vision of sharing a trained
simulator. ``docs/examples/run_exported.py`` is a complete runner, and its frames are bitwise those of
``lss-jax generate`` for the same seed on the same machine (tested).

**File format** (``format = "lss_jax.simulator"``, ``format_version = 2``): a NumPy ``.npz`` archive
(``np.load(path)``, no pickles) with

* ``meta``: JSON text: ``format``, ``format_version``, ``lss_jax_version``, ``latent_dim``, ``n_atoms``,
  ``chunk_steps``, ``decode_block``, ``lag_time`` (ps per step), ``key_impl`` (the PRNG implementation,
  for ``jax.random.key(seed, impl=...)``), ``n_propagator_leaves``, ``n_decoder_leaves``, ``redraws``, the model's
  ``fingerprint`` and configuration (``LSSConfig.to_dict``: nested in sections since model format 3; informational,
  the calling convention does not read it);
* ``rollout``, ``decode``, ``from_unit``: serialized ``jax.export.Exported`` functions (``uint8`` bytes,
  ``jax.export.deserialize(bytearray(...))``);
* ``propagator_0 ... propagator_{P-1}``, ``decoder_0 ... decoder_{D-1}``: the networks' weights (and the
  decoder's coordinate map), as flat lists of arrays, the first argument group of the functions;
* ``start_points`` ``[K, latent_dim]``: unit-box training points generation starts from;
* ``topology_pdb``: the decoded atoms as PDB text (reference structure), for writing frames.

**Calling convention** (``key_data`` is ``jax.random.key_data`` of a key, ``uint32[2]`` for threefry):

* ``rollout(key_data, propagator_leaves, u [B, m] float32, ids [B] int32, start_step int32) ->
  [B, chunk_steps, m]``: ``chunk_steps`` propagator steps of the trajectories ``ids`` from the unit-box
  states ``u`` (the last frame of the previous chunk), the step keys addressed by the global step
  ``start_step + t``. ``B`` is symbolic (any batch). To continue a rollout, pass the last frame and
  ``start_step + chunk_steps``; to stop at ``n_steps`` that is not a multiple, drop the surplus frames.
* ``decode(key_data, decoder_leaves, u [decode_block, m] float32, rows_b [decode_block] int32,
  rows_t [decode_block] int32, attempts [decode_block] int32) -> (xyz [decode_block, n_atoms, 3] (nm),
  ratio [decode_block])``: row ``i`` is draw ``attempts[i]`` (0 = the first) of frame ``rows_t[i]`` (0 = the
  first frame after the start) of trajectory ``rows_b[i]``; pad the last block. ``ratio < 1``: the frame is
  outside the training data's support (:mod:`lss_jax.decoder.support`); draw it again with ``attempts`` 1,
  2, ... up to ``redraws`` (metadata) until ``ratio >= 1``, and if no draw is inside keep the one with the
  largest ratio (the first of equals), as :func:`lss_jax.decoder.decode_rows` does. It is the function generation
  decodes with (:func:`lss_jax.decoder.decode_fn`), exported.
* ``from_unit(u [B, m]) -> [B, m]``: unit box to latent coordinates (``B`` symbolic).

Keys, as in :mod:`lss_jax.generation.simulate`: ``k_start, k_roll, k_dec = jax.random.split(jax.random.key(seed), 3)``;
start points ``start_points[jax.random.randint(k_start, (n_traj,), 0, K)]``; ``rollout`` with ``k_roll``,
``decode`` with ``k_dec``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "export_simulator"]

FORMAT_NAME = "lss_jax.simulator"
FORMAT_VERSION = 2  # 2: decode takes the draw index and returns the support ratio


def _serialized(exported) -> np.ndarray:
    return np.frombuffer(bytes(exported.serialize()), dtype=np.uint8)


def export_simulator(model, path: str | os.PathLike, *, chunk_steps: int = 100, decode_block: int = 4096,
                     platforms: tuple[str, ...] | None = None) -> Path:
    """Write ``model``'s propagator and decoder as a self-contained ``.jaxexport`` file (format above).

    Args:
        model: a fitted :class:`lss_jax.LSSModel` (or :class:`lss_jax.LSS`).
        path: output file (written atomically).
        chunk_steps: propagator steps per ``rollout`` call.
        decode_block: rows per ``decode`` call (:meth:`lss_jax.LSSModel.decode_unit` uses
            :func:`lss_jax.decoder.default_decode_block`, 4096 on a CPU; the same value gives the same bits).
        platforms: platforms to lower for (default: this backend only; e.g. ``("cpu", "cuda")``).

    Returns:
        ``path``.
    """
    from lss_jax._version import __version__
    from lss_jax.decoder import decode_fn
    from lss_jax.engine import io as _io
    from lss_jax.model import as_model
    from lss_jax.propagator import _rollout_body, mdn_apply_fn
    from lss_jax.propagator.scaling import minmax_inverse

    model = as_model(model)
    if chunk_steps < 1 or decode_block < 1:
        raise ValueError(f"chunk_steps and decode_block must be >= 1, got {chunk_steps} and {decode_block}.")
    m, n_atoms = model.latent_dim, len(model.atom_indices)
    graphdef, params = nnx.split(model.propagator)
    prop_leaves, prop_tree = jax.tree_util.tree_flatten(params)
    mixture_fn, boundary = mdn_apply_fn(graphdef), model.config.propagator.boundary
    dec = model.decoder
    # the decode function generation uses (lss_jax.decoder.decode_rows), so the exported frames are its frames
    decode_rows_fn, d_params = decode_fn(dec)
    dec_leaves, dec_tree = jax.tree_util.tree_flatten((d_params, dec.coordinates, dec.support))
    key_impl = str(jax.random.key_impl(jax.random.key(0)))

    def rollout(key_data, leaves, u, ids, start_step):
        key = jax.random.wrap_key_data(key_data, impl=key_impl)
        return _rollout_body(key, jax.tree_util.tree_unflatten(prop_tree, leaves), u, start_step, ids, mixture_fn,
                             chunk_steps, 1, boundary)

    def decode(key_data, leaves, u, rows_b, rows_t, attempts):
        key = jax.random.wrap_key_data(key_data, impl=key_impl)
        d_params, cmap, support = jax.tree_util.tree_unflatten(dec_tree, leaves)
        return decode_rows_fn(d_params, cmap, support, key, u, rows_b, rows_t, attempts)

    def from_unit(u):
        return minmax_inverse(model.latent_scaler, u)

    key_data = jax.random.key_data(jax.random.key(0))
    spec = lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.asarray(a).dtype)  # noqa: E731
    (b,) = jax.export.symbolic_shape("b")
    kw = {} if platforms is None else {"platforms": tuple(platforms)}
    exported = {
        "rollout": jax.export.export(jax.jit(rollout), **kw)(
            spec(key_data), [spec(x) for x in prop_leaves], jax.ShapeDtypeStruct((b, m), jnp.float32),
            jax.ShapeDtypeStruct((b,), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32)),
        "decode": jax.export.export(jax.jit(decode), **kw)(
            spec(key_data), [spec(x) for x in dec_leaves], jax.ShapeDtypeStruct((decode_block, m), jnp.float32),
            jax.ShapeDtypeStruct((decode_block,), jnp.int32), jax.ShapeDtypeStruct((decode_block,), jnp.int32),
            jax.ShapeDtypeStruct((decode_block,), jnp.int32)),
        "from_unit": jax.export.export(jax.jit(from_unit), **kw)(jax.ShapeDtypeStruct((b, m), jnp.float32)),
    }
    meta = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "lss_jax_version": __version__,
        "latent_dim": m, "n_atoms": n_atoms, "chunk_steps": chunk_steps, "decode_block": decode_block,
        "lag_time": model.lag_time, "key_impl": key_impl, "n_propagator_leaves": len(prop_leaves),
        "n_decoder_leaves": len(dec_leaves), "redraws": dec.redraws if dec.support is not None else 0, "fingerprint": model.fingerprint(), "config": model.config.to_dict(),
        "platforms": list(exported["rollout"].platforms),
    }
    arrays = {name: _serialized(e) for name, e in exported.items()}
    arrays.update({f"propagator_{i}": np.asarray(x) for i, x in enumerate(prop_leaves)})
    arrays.update({f"decoder_{i}": np.asarray(x) for i, x in enumerate(dec_leaves)})
    arrays["start_points"] = np.asarray(model.start_points, np.float32)
    arrays["meta"] = np.array(json.dumps(meta))
    import io

    pdb = io.StringIO()
    _write_pdb(model.reference, pdb)
    arrays["topology_pdb"] = np.array(pdb.getvalue())
    path = Path(path)
    with _io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return path


def _write_pdb(traj, stream) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        traj.save_pdb(str(Path(d) / "top.pdb"))
        stream.write((Path(d) / "top.pdb").read_text())
