"""Writing an :class:`lss_jax.model.LSSModel` as a model directory (the format: :mod:`lss_jax.model.io`).

The writer and the flat weight maps live in a module of their own, so that ``LSSModel.save`` and
``LSSModel.fingerprint`` use them without importing :mod:`lss_jax.model.io`, which reads model directories
back into an ``LSSModel`` and so imports :mod:`lss_jax.model` (docs/architecture.md, "Layers"). The public names
are :mod:`lss_jax.model.io`'s: ``save_model``, ``flat_weights``, ``FORMAT_VERSION``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from lss_jax._version import __version__
from lss_jax.decoder import coordinate_map_arrays, support_arrays
from lss_jax.engine.io import exclusive_output, sha256_file

FORMAT_VERSION = 3  # 3: the configuration nested in sections (data, encoder, propagator, decoder)
FORMAT_NAME = "lss_jax.LSS"


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def flat_weights(module: nnx.Module) -> dict[str, np.ndarray]:
    """A network's state as a flat ``{"path/to/leaf": array}`` map (what the ``.npz`` files hold).

    Example:
        >>> sorted(flat_weights(nnx.Linear(2, 3, rngs=nnx.Rngs(0))))
        ['bias', 'kernel']
    """
    pure = nnx.to_pure_dict(nnx.state(module))
    return {_path_name(path): np.asarray(v) for path, v in jax.tree_util.tree_flatten_with_path(pure)[0]}


def save_model(model, path: str | os.PathLike) -> Path:
    """Write ``model`` (an :class:`lss_jax.model.LSSModel`) as a model directory; returns its path.

    The directory is locked while it is written (:func:`lss_jax.engine.io.exclusive_output`): a second writer of the
    same path is refused.
    """
    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(f"parent directory of {path} does not exist; create it first.")
    with exclusive_output(path, what="model directory", how_to_fix="wait for it to finish, or save to another path"):
        return _save_model(model, path)


def _save_model(model, path: Path) -> Path:
    import mdtraj as md


    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        np.savez(
            tmp / "arrays.npz",
            feature_mean=model.feature_scaler.mean, feature_std=model.feature_scaler.std,
            srv_mean=model.projection.mean, srv_vectors=model.projection.vectors,
            srv_eigenvalues=model.projection.eigenvalues, latent_low=np.asarray(model.latent_scaler.low),
            latent_high=np.asarray(model.latent_scaler.high), atom_indices=model.atom_indices,
            start_points=model.start_points, timestep=np.float64(model.timestep),
            reference_xyz=np.asarray(model.reference_xyz, np.float32),
        )
        np.savez(tmp / "coordinates.npz", **coordinate_map_arrays(model.decoder.coordinates),
                 **support_arrays(model.decoder.support))
        model.reference.save_pdb(str(tmp / "topology.pdb"))
        md.Trajectory(np.zeros((1, model.topology.n_atoms, 3), np.float32), model.topology).save_pdb(
            str(tmp / "full_topology.pdb"))
        networks = {"encoder": model.encoder, "propagator": model.propagator, "decoder": model.decoder.network}
        if model.decoder.critic is not None:
            networks["critic"] = model.decoder.critic
        if model.propagator_ensemble is not None:
            networks["propagator_ensemble"] = model.propagator_ensemble
        for name, net in networks.items():
            np.savez(tmp / f"{name}.npz", **flat_weights(net))
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "lss_jax_version": __version__,
            "config": model.config.to_dict(),
            "latent_dim": int(model.latent_dim),
            "n_features": int(len(model.feature_scaler.mean)),
            "n_decoded_atoms": int(len(model.atom_indices)),
            "decoder_states": int(getattr(model.decoder.network, "n_states", 0)),  # 0: none (knn, wgan)
            "info": model.info,
            "files": {p.name: sha256_file(p) for p in sorted(tmp.iterdir())},
        }
        (tmp / "lss.json").write_text(json.dumps(meta, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
