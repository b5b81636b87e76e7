"""Reading and writing an :class:`lss_jax.model.LSSModel`: a directory, checksummed, written atomically.

On-disk format (``FORMAT_VERSION = 3``):

* ``lss.json``: format name and version, lss_jax version, the full :class:`lss_jax.LSSConfig` as
  :meth:`~lss_jax.LSSConfig.to_dict` writes it (``lag``, ``seed`` and the sections ``data``, ``encoder``,
  ``propagator``, ``decoder``; ``decoder.kind`` and ``decoder.coordinates`` say which decoder the weights belong
  to), derived sizes, SRV eigenvalues and implied timescales, training summaries, and the SHA-256 of every
  other file. It is written last and doubles as the completion marker: a directory without it, or whose files
  do not match their checksums, is rejected by :func:`load_model`.
* ``arrays.npz``: feature standardizer, SRV projection (mean, eigenvectors, eigenvalues), latent
  min-max box, decoded-atom indices, start points for generation, the training timestep, and (since
  lss_jax 0.1 with ``LSSModel``) ``reference_xyz``, the exact reference structure (``topology.pdb`` rounds it
  to the PDB's 0.001 Å; older directories fall back to it).
* ``coordinates.npz``: the decoder's coordinate map (``kind`` = ``"internal"`` or ``"cartesian"`` and the
  fields of :class:`lss_jax.decoder.InternalMap` / :class:`lss_jax.decoder.CartesianMap`).
* ``topology.pdb``: the decoded atoms, at the alignment reference structure; ``full_topology.pdb``: the
  training topology (coordinates zero).
* ``encoder.npz``, ``propagator.npz``, ``decoder.npz`` (velocity field or generator), ``critic.npz`` (WGAN
  only), ``propagator_ensemble.npz`` (with an ensemble): network weights as flat ``"path/to/leaf" -> array``
  maps of the flax NNX state (``nnx.to_pure_dict``).

Formats 1 and 2 are still read. Their ``lss.json`` holds the flat configuration of earlier lss_jax (one field per
setting: ``encoder_hidden``, ``n_components``, ...), translated to the nested one with a
:class:`lss_jax.config.FlatConfigWarning`; format 2 is format 3 otherwise. Format 1 (lss_jax before the flow
decoder): its ``generator.npz`` and ``critic.npz`` are a cWGAN-GP on aligned Cartesian coordinates whose
standardizer is ``coord_mean``/``coord_std`` in ``arrays.npz``.

The directory is assembled under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lss_jax._version import __version__
from lss_jax.config import LSSConfig
from lss_jax.data.featurize import Standardizer
from lss_jax.decoder import (
    CartesianMap,
    NeighbourDecoder,
    coordinate_map_from_arrays,
    decoder_template,
    support_from_arrays,
)
from lss_jax.encoder import SRVNet, SRVProjection
from lss_jax.engine.io import sha256_file
from lss_jax.model import LSSModel
from lss_jax.model.directory import FORMAT_NAME, FORMAT_VERSION, _path_name, flat_weights, save_model
from lss_jax.propagator import MDN
from lss_jax.propagator.ensemble import MDNEnsemble
from lss_jax.propagator.scaling import MinMaxScaler

__all__ = ["FORMAT_VERSION", "ModelFormatError", "save_model", "load_model", "flat_weights", "load_weights"]


class ModelFormatError(ValueError):
    """A model directory that is incomplete, corrupted, or from a newer format.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as empty:
        ...     try:
        ...         load_model(empty)
        ...     except ModelFormatError as err:
        ...         print("no lss.json" in str(err), isinstance(err, ValueError))
        True True
    """


def load_weights(module: nnx.Module, flat: dict[str, np.ndarray]) -> nnx.Module:
    """Set ``module``'s state from a :func:`flat_weights` map (every leaf must be there, with its shape; a
    :class:`~lss_jax.decoder.states.StateAnchors` leaf takes the saved shape, and keeps its empty default in a
    model saved before it existed; so do the frames a chain decoder's template start stores)."""
    from lss_jax.decoder.knn import _Stored
    from lss_jax.decoder.states import StateAnchors

    sized_by_data = {_path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(
        nnx.to_pure_dict(nnx.state(module, (StateAnchors, _Stored))))[0]}
    state = nnx.state(module)
    pure = nnx.to_pure_dict(state)
    values = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(pure)[0]:
        name = _path_name(path)
        if name in sized_by_data:
            values.append(jnp.asarray(flat[name]) if name in flat else leaf)
            continue
        if name not in flat or flat[name].shape != np.shape(leaf):
            raise ModelFormatError(f"weight {name!r} is missing or has the wrong shape in the saved model.")
        values.append(jnp.asarray(flat[name]))
    nnx.replace_by_pure_dict(state, jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(pure), values))
    nnx.update(module, state)
    return module


def _newer_than_this(version: str) -> bool:

    def parts(v):
        import re

        return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])

    try:
        from packaging.version import Version

        return Version(version) > Version(__version__)
    except Exception:  # no packaging, or a version string it cannot parse
        return parts(version) > parts(__version__)


def _newer_message(path: Path, what: str, writer) -> str:

    newer = isinstance(writer, str) and _newer_than_this(writer)  # (a development copy may not have bumped it)
    by = f"lss_jax {writer}" if newer else "a newer lss_jax" + (f" (it records version {writer})" if writer else "")
    needs = f"lss_jax {writer} or newer" if newer else "the lss_jax release that introduced it, or a later one,"
    return (f"{path} was written by {by} in {what}, which this lss_jax ({__version__}) cannot read (it reads model "
            f"formats 1 to {FORMAT_VERSION}). Upgrade lss_jax: {needs} reads it"
            + (f" (pip install -U 'lss_jax>={writer}')." if newer else " (pip install -U lss_jax)."))


def _read_meta(path: Path) -> tuple[dict, int]:
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    meta_path = path / "lss.json"
    if not meta_path.is_file():
        raise ModelFormatError(f"{path} has no lss.json: not a model directory, or an interrupted save.")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ModelFormatError(f"{meta_path} is not valid JSON ({err}); the model directory is corrupted.") from err
    fmt, version, writer = meta.get("format"), meta.get("format_version"), meta.get("lss_jax_version")
    newer_writer = isinstance(writer, str) and _newer_than_this(writer)
    if fmt != FORMAT_NAME:
        # a later lss_jax may name or number its format differently: what it records about itself tells it apart
        # from a directory that is not an lss_jax model at all
        if newer_writer or isinstance(fmt, int) or (isinstance(fmt, str) and fmt.startswith("lss_jax")):
            raise ModelFormatError(_newer_message(path, f"format {fmt!r}", writer))
        raise ModelFormatError(f"{path} is not an lss_jax model (its lss.json has format {fmt!r}, not {FORMAT_NAME!r}).")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFormatError(f"{meta_path} has format_version {version!r}, not a model format number; the model "
                               "directory is corrupted.")
    if version > FORMAT_VERSION:
        raise ModelFormatError(_newer_message(path, f"model format {version}", writer))
    for name, digest in meta.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise ModelFormatError(f"{path} is missing {name}; the model directory is incomplete.")
        if sha256_file(f) != digest:
            raise ModelFormatError(f"{f} does not match its checksum; the model directory is corrupted.")
    return meta, version


def load_model(path: str | os.PathLike):
    """Read a model directory written by :func:`save_model` (or format 1), verifying version and checksums.

    Returns:
        The :class:`lss_jax.model.LSSModel`.
    """
    import mdtraj as md


    path = Path(path)
    meta, version = _read_meta(path)
    # formats 1 and 2 store the flat configuration of earlier lss_jax: read with a FlatConfigWarning
    cfg = LSSConfig.from_saved(meta["config"], source=f"{path / 'lss.json'} (model format {version}; LSS.load(path)"
                              ".save(new_path) stores the nested form)")
    if version == 1:  # format 1: the cWGAN-GP on aligned Cartesian coordinates, its settings in the config
        cfg = cfg.replace(decoder={"kind": "wgan", "coordinates": "cartesian"})
    arrays = np.load(path / "arrays.npz")
    latent_dim = int(meta["latent_dim"])
    reference = md.load(str(path / "topology.pdb"))
    projection = SRVProjection(arrays["srv_mean"], arrays["srv_vectors"], arrays["srv_eigenvalues"], cfg.lag)
    rngs = nnx.Rngs(0)  # templates only: every weight is then read from the files
    weights = lambda name: dict(np.load(path / name))  # noqa: E731
    encoder_weights = weights("encoder.npz")
    linear = any(name.startswith("linear/") for name in encoder_weights)  # the linear floor's TICA path was used
    encoder = load_weights(SRVNet(int(meta["n_features"]), projection.vectors.shape[0], cfg.encoder.hidden,
                                  batch_norm=cfg.encoder.batch_norm, linear=linear, rngs=rngs), encoder_weights)
    encoder.eval()
    prop = cfg.propagator
    propagator = load_weights(
        MDN(latent_dim, prop.n_components, prop.hidden, scale_floor=prop.scale_floor, rngs=rngs),
        weights("propagator.npz"))
    if version == 1:
        cmap = CartesianMap(jnp.asarray(reference.xyz[0]), jnp.asarray(arrays["coord_mean"], jnp.float32),
                            jnp.asarray(arrays["coord_std"], jnp.float32))
        support = None
        decoder_file = "generator.npz"
    else:
        coordinate_arrays = dict(np.load(path / "coordinates.npz"))
        cmap = coordinate_map_from_arrays(coordinate_arrays)
        support = support_from_arrays(coordinate_arrays)
        decoder_file = "decoder.npz"
    template = decoder_template(cfg.decoder, cmap, latent_dim, int(meta.get("decoder_states", 0)))
    critic = None if template.critic is None else load_weights(template.critic, weights("critic.npz"))
    if cfg.decoder.kind == "knn":  # stored frames, as many as were kept
        stored = weights(decoder_file)
        if set(stored) != {"latents", "features"}:
            raise ModelFormatError(f"{path / decoder_file} does not hold a knn decoder's latents and features.")
        network = NeighbourDecoder(stored["latents"], stored["features"], cfg.decoder.neighbours)
    else:
        network = load_weights(template.network, weights(decoder_file))
    decoder = template.replace(network=network, critic=critic, support=support)
    ensemble = None
    if "propagator_ensemble.npz" in meta.get("files", {}):
        ensemble = load_weights(MDNEnsemble(prop.ensemble_size, latent_dim, prop.n_components, prop.hidden,
                                            scale_floor=prop.scale_floor, rngs=rngs), weights("propagator_ensemble.npz"))
    return LSSModel(
        feature_scaler=Standardizer(arrays["feature_mean"], arrays["feature_std"]), projection=projection,
        latent_scaler=MinMaxScaler(jnp.asarray(arrays["latent_low"]), jnp.asarray(arrays["latent_high"])),
        encoder=encoder, propagator=propagator, decoder=decoder, propagator_ensemble=ensemble,
        atom_indices=arrays["atom_indices"],
        reference_xyz=arrays["reference_xyz"] if "reference_xyz" in arrays else reference.xyz[0], start_points=arrays["start_points"],
        config=cfg, topology=md.load_topology(str(path / "full_topology.pdb")), decoded_topology=reference.topology,
        timestep=float(arrays["timestep"]), latent_dim=latent_dim, info_json=json.dumps(meta.get("info", {})),
    )
