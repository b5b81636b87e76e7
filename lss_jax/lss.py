"""The ``LSS`` facade: fit the three networks on MD trajectories, generate new ones, save and load.

    >>> model = LSS(lag=5, latent_dim=2).fit(trajs)          # doctest: +SKIP
    >>> new = model.generate(jax.random.key(0), n_trajectories=100, n_steps=1000)  # mdtraj.Trajectory  # doctest: +SKIP

The functional core (``lss_jax.vamp``, ``propagator``, ``decoder``, ``encoder``) stays usable without it.

On-disk format (``LSS.save``; ``FORMAT_VERSION = 2``), a directory:

* ``lss.json``: format name and version, lss_jax version, the full :class:`LSSConfig` (its ``decoder`` and
  ``decoder_coordinates`` say which decoder the weights belong to), derived sizes, SRV eigenvalues and
  implied timescales, training summaries, and the SHA-256 of every other file. It is written last and
  doubles as the completion marker: a directory without it, or whose files do not match their checksums,
  is rejected by ``LSS.load``.
* ``arrays.npz``: feature standardizer, SRV projection (mean, eigenvectors, eigenvalues), latent
  min-max box, decoded-atom indices, start points for generation.
* ``coordinates.npz``: the decoder's coordinate map (``kind`` = ``"internal"`` or ``"cartesian"`` and the
  fields of :class:`lss_jax.decoder.InternalMap` / :class:`lss_jax.decoder.CartesianMap`).
* ``topology.pdb``: the decoded atoms, at the alignment reference structure.
* ``encoder.npz``, ``propagator.npz``, ``decoder.npz`` (velocity field or generator), ``critic.npz`` (WGAN
  only): network weights as flat ``"path/to/leaf" -> array`` maps of the flax NNX state (``nnx.to_pure_dict``).

Format 1 (lss_jax before the flow decoder) is still read: its ``generator.npz`` and ``critic.npz`` are a
cWGAN-GP on aligned Cartesian coordinates whose standardizer is ``coord_mean``/``coord_std`` in
``arrays.npz``.

The directory is assembled under a temporary name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lss_jax._io import sha256_file
from lss_jax.data.featurize import FeatureSpec, Standardizer, featurize, standardizer_fit
from lss_jax.decoder import fit_decoder
from lss_jax.encoder import SRVNet, SRVProjection, choose_latent_dim, fit_srv, implied_timescales, srv_transform
from lss_jax.propagator import MDN, fit_mdn
from lss_jax.scaling import MinMaxScaler, minmax_fit, minmax_inverse, minmax_transform

__all__ = ["LSS", "LSSConfig", "FORMAT_VERSION", "ModelFormatError"]

FORMAT_VERSION = 2
FORMAT_NAME = "lss_jax.LSS"


class ModelFormatError(ValueError):
    """A model directory that is incomplete, corrupted, or from a newer format.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as empty:
        ...     try:
        ...         LSS.load(empty)
        ...     except ModelFormatError as err:
        ...         print("no lss.json" in str(err), isinstance(err, ValueError))
        True True
    """


@dataclasses.dataclass(frozen=True)
class LSSConfig:
    """Hyperparameters of a molecular LSS (defaults: the paper's architectures).

    ``lag`` is in trajectory frames. ``latent_dim=None`` picks the dimension at the largest gap of
    the SRV implied timescales among ``max_latent_dim``.

    Example:
        >>> config = LSSConfig(lag=5, latent_dim=2)
        >>> config.lag, config.latent_dim, config.n_components
        (5, 2, 24)
        >>> LSSConfig.from_dict({"lag": 5, "encoder_hidden": [32, 32]}).encoder_hidden   # e.g. from TOML
        (32, 32)
    """

    lag: int
    latent_dim: int | None = None
    max_latent_dim: int = 4
    torsions: tuple[str, ...] = ("phi", "psi", "chi")
    distances: str | None = "heavy"
    atom_selection: str = "not element H"
    val_fraction: float = 0.1
    seed: int = 0
    # SRV encoder
    encoder_hidden: tuple[int, ...] = (100, 100)
    encoder_batch_norm: bool = True
    encoder_learning_rate: float = 1e-3
    encoder_batch_size: int = 2000
    encoder_epochs: int = 50
    encoder_patience: int = 5
    # MDN propagator
    n_components: int = 24
    propagator_hidden: tuple[int, ...] = (100, 100)
    propagator_learning_rate: float = 1e-3
    propagator_batch_size: int = 1024
    propagator_epochs: int = 60
    propagator_patience: int = 30
    scale_floor: float = 1e-3
    boundary: str = "reflect"
    ensemble_size: int = 0  # > 1: also train this many bootstrap propagators (uncertainty, ensemble spread)
    # decoder (lss_jax.decoder.DecoderConfig; None: the decoder kind's default)
    decoder: str = "flow"  # "flow" (conditional flow matching) or "wgan" (the paper's cWGAN-GP)
    decoder_coordinates: str = "internal"  # "internal" (Z-matrix, NeRF) or "cartesian" (aligned, the paper's)
    decoder_hidden: tuple[int, ...] | None = None  # flow: 3 x 256; wgan: 3 x 200
    decoder_learning_rate: float | None = None  # flow: 1e-3 cosine-decayed; wgan: 2e-4
    decoder_batch_size: int = 256
    decoder_epochs: int | None = None  # flow: 300 passes over the frames; wgan: what 20 000 iterations need
    decoder_iterations: int | None = None  # if set: this many optimizer steps (wgan: generator updates)
    decoder_patience: int = 30
    decoder_lr_decay: bool | None = None  # flow: cosine decay; wgan: constant, as in the paper
    flow_steps: int = 10
    noise_dim: int = 50
    critic_hidden: tuple[int, ...] | None = None
    decoder_condition: str = "input"  # wgan: "every_layer" feeds the latent point to every layer
    n_critic: int = 5
    gp_weight: float = 10.0

    def __post_init__(self):
        ints = {
            "lag": self.lag, "max_latent_dim": self.max_latent_dim, "encoder_batch_size": self.encoder_batch_size,
            "encoder_epochs": self.encoder_epochs, "encoder_patience": self.encoder_patience,
            "n_components": self.n_components, "propagator_batch_size": self.propagator_batch_size,
            "propagator_epochs": self.propagator_epochs, "propagator_patience": self.propagator_patience,
        }
        for name, value in ints.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not isinstance(self.ensemble_size, int) or isinstance(self.ensemble_size, bool) or self.ensemble_size < 0 \
                or self.ensemble_size == 1:
            raise ValueError(f"ensemble_size must be 0 (no ensemble) or an integer >= 2, got {self.ensemble_size!r}.")
        if self.latent_dim is not None and (not isinstance(self.latent_dim, int) or self.latent_dim < 1):
            raise ValueError(f"latent_dim must be a positive integer or None, got {self.latent_dim!r}.")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}.")
        self.decoder_config  # validates the decoder settings

    @property
    def decoder_config(self):
        """The decoder fields as a :class:`lss_jax.decoder.DecoderConfig`."""
        from lss_jax.decoder import DecoderConfig

        return DecoderConfig(
            kind=self.decoder, coordinates=self.decoder_coordinates, hidden=self.decoder_hidden,
            learning_rate=self.decoder_learning_rate, batch_size=self.decoder_batch_size, epochs=self.decoder_epochs,
            iterations=self.decoder_iterations, patience=self.decoder_patience, lr_decay=self.decoder_lr_decay,
            flow_steps=self.flow_steps,
            noise_dim=self.noise_dim, critic_hidden=self.critic_hidden, condition=self.decoder_condition,
            n_critic=self.n_critic,
            gp_weight=self.gp_weight,
        )

    @classmethod
    def from_dict(cls, data: dict) -> "LSSConfig":
        """Build from a plain dict (e.g. TOML), rejecting unknown keys and coercing lists to tuples."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown configuration key(s) {unknown}; valid keys: {sorted(fields)}.")
        clean = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**clean)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(torsions=tuple(self.torsions), distances=self.distances)


def _as_traj_list(trajs):
    import mdtraj as md

    trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
    if not trajs:
        raise ValueError("no trajectory given.")
    n_atoms = trajs[0].n_atoms
    for t in trajs:
        if t.n_atoms != n_atoms:
            raise ValueError(f"all trajectories must have the same atoms ({n_atoms}); got one with {t.n_atoms}.")
        if not np.all(np.isfinite(t.xyz)):
            raise ValueError("a trajectory contains NaN or Inf coordinates; repair or drop those frames.")
    return trajs


def _eval_mode_vamp2(encoder, features, lag: int, val_fraction: float, max_pairs: int = 200_000) -> float:
    """VAMP-2 of the trained encoder on all training pairs (at most ``max_pairs``, evenly spaced) in eval mode.

    The training log's VAMP-2 is a mean over minibatches in train mode (batch-norm statistics of each batch,
    covariances of 2000 pairs), the validation VAMP-2 uses eval mode on held-out pairs: this number, eval mode
    on the training pairs, tells a gap from batch norm and minibatch estimates (log vs this) from one of
    generalization (this vs validation).
    """
    from lss_jax.data.pairs import lagged_pairs, split_trajectories
    from lss_jax.encoder import srv_loss

    train, _ = split_trajectories(features, val_fraction)
    x0, xt = lagged_pairs(train, lag)
    keep = np.linspace(0, len(x0) - 1, min(len(x0), max_pairs)).astype(int)
    return -float(srv_loss(encoder, (jnp.asarray(x0[keep]), jnp.asarray(xt[keep]))))


def _flat_weights(model: nnx.Module) -> dict[str, np.ndarray]:
    pure = nnx.to_pure_dict(nnx.state(model))
    leaves = jax.tree_util.tree_flatten_with_path(pure)[0]
    return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): np.asarray(v) for path, v in leaves}


def _load_weights(model: nnx.Module, flat: dict[str, np.ndarray]) -> nnx.Module:
    state = nnx.state(model)
    pure = nnx.to_pure_dict(state)
    paths = jax.tree_util.tree_flatten_with_path(pure)[0]
    treedef = jax.tree_util.tree_structure(pure)
    values = []
    for path, leaf in paths:
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        if name not in flat or flat[name].shape != np.shape(leaf):
            raise ModelFormatError(f"weight {name!r} is missing or has the wrong shape in the saved model.")
        values.append(jnp.asarray(flat[name]))
    nnx.replace_by_pure_dict(state, jax.tree_util.tree_unflatten(treedef, values))
    nnx.update(model, state)
    return model


class LSS:
    """Molecular latent space simulator: SRV encoder + MDN propagator + decoder (flow matching on internal
    coordinates by default; the paper's cWGAN-GP with ``decoder="wgan"``).

    Args:
        lag: propagator/encoder lag in frames.
        **kwargs: any field of :class:`LSSConfig`.

    References:
        H. Sidky, W. Chen, A. L. Ferguson, Chem. Sci. 11, 9459 (2020).

    Example:
        Training takes minutes even on the shipped trajectory, so the lines after the construction are
        not run here (``lss-jax demo`` runs them):

        >>> model = LSS(lag=5, latent_dim=2, decoder_iterations=2000)
        >>> model.config.lag, model.config.latent_dim, model.config.decoder_iterations
        (5, 2, 2000)
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> model = model.fit(load_alanine_dipeptide("train"))  # doctest: +SKIP
        >>> model.encode(load_alanine_dipeptide("independent")).shape  # doctest: +SKIP
        (25000, 2)
        >>> traj = model.generate(jax.random.key(0), n_trajectories=10, n_steps=100)  # doctest: +SKIP
        >>> traj.n_frames, traj.n_atoms  # doctest: +SKIP
        (1000, 10)
        >>> loaded = LSS.load(model.save("ala2-model"))  # doctest: +SKIP
    """

    def __init__(self, lag: int | None = None, *, config: LSSConfig | None = None, **kwargs):
        if config is None:
            if lag is None:
                raise ValueError("give the lag (in frames), e.g. LSS(lag=5).")
            config = LSSConfig(lag=lag, **kwargs)
        elif lag is not None or kwargs:
            config = dataclasses.replace(config, **({"lag": lag} if lag is not None else {}), **kwargs)
        self.config = config
        self._fitted = False
        self.info: dict = {}

    # ------------------------------------------------------------------ fitting
    def fit(
        self, trajs, *, progress: bool = True, checkpoint_dir=None, resume: bool = False, checkpoint_every: int = 1,
    ) -> "LSS":
        """Train encoder, propagator and decoder on one or many ``mdtraj.Trajectory`` objects.

        Lagged pairs never straddle two trajectories; the trailing ``val_fraction`` of each one is
        held out for early stopping.

        Args:
            trajs: training trajectories.
            progress: show progress bars.
            checkpoint_dir: save the training state of each network here (``encoder``, ``propagator``,
                ``decoder`` checkpoints, format in :mod:`lss_jax.checkpoint`) every ``checkpoint_every``
                epochs (decoder: blocks of 250 iterations).
            resume: continue from the checkpoints in ``checkpoint_dir`` (finished networks are not
                retrained); the final model is bitwise that of an uninterrupted run on the same machine.
                Without ``resume`` an existing checkpoint is an error.
        """
        cfg = self.config
        trajs = _as_traj_list(trajs)
        key = jax.random.key(cfg.seed)
        k_enc, k_prop, k_dec = jax.random.split(key, 3)
        timings = {}
        t0 = time.perf_counter()

        self.topology_full = trajs[0].topology
        # Check every input before any training, so that bad input fails in seconds with a message saying what to fix.
        try:
            atoms = self.topology_full.select(cfg.atom_selection) if cfg.atom_selection else np.arange(trajs[0].n_atoms)
        except Exception as err:  # mdtraj's selection parser raises several types, with multi-line messages
            from lss_jax.data.featurize import _selection_error

            raise ValueError(
                f"atom_selection {cfg.atom_selection!r} is not a valid mdtraj selection ({_selection_error(err)}); "
                "use e.g. 'not element H' or 'all'."
            ) from err
        if len(atoms) == 0:
            raise ValueError(
                f"atom_selection {cfg.atom_selection!r} matches no atom of the topology; use e.g. 'not element H' or 'all'."
            )
        lengths = [len(t) for t in trajs]
        shortest = min(lengths)
        if max(lengths) <= cfg.lag + 1:
            raise ValueError(
                f"lag ({cfg.lag} frames) must be shorter than the trajectories (longest {max(lengths)} frames); "
                "use a shorter lag or longer trajectories."
            )
        too_short = [i for i, n in enumerate(lengths) if n <= cfg.lag]
        if too_short:
            i = too_short[0]
            raise ValueError(
                f"trajectory {i} (counting from 0; {lengths[i]} frames) is not longer than the lag ({cfg.lag} frames) "
                f"and gives no lagged pair ({len(too_short)} of {len(trajs)} trajectories are); drop it or use a shorter lag."
            )
        from lss_jax.data.featurize import feature_names

        n_features = len(feature_names(self.topology_full, cfg.feature_spec))
        k = cfg.latent_dim if cfg.latent_dim is not None else cfg.max_latent_dim
        if k > n_features:
            which = "latent_dim" if cfg.latent_dim is not None else "max_latent_dim"
            raise ValueError(
                f"latent dimension {k} ({which}) exceeds the number of features ({n_features}); lower {which} "
                "or add features (torsions, distances)."
            )
        need = 2 * k + 2  # pairs per batch to estimate the k x k SRV covariances
        if cfg.encoder_batch_size < need:
            raise ValueError(
                f"encoder_batch_size ({cfg.encoder_batch_size}) is too small to estimate {k}x{k} covariances; "
                f"raise it to at least {need}."
            )
        n_val = [round(cfg.val_fraction * n) for n in lengths]  # as lss_jax.data.pairs.split_trajectories
        train_pairs = sum(max(0, n - v - cfg.lag) for n, v in zip(lengths, n_val))
        val_pairs = sum(max(0, v - cfg.lag) for v in n_val)
        if train_pairs < need or val_pairs < 1:
            raise ValueError(
                f"too few lagged pairs at lag {cfg.lag}: {train_pairs} for training and {val_pairs} for validation "
                f"(the last val_fraction={cfg.val_fraction} of each trajectory); a training batch needs at least {need} "
                "and validation at least 1. Use longer trajectories or a shorter lag."
            )
        ckpt = None
        if checkpoint_dir is not None:
            from lss_jax.checkpoint import Checkpointer

            ckpt = lambda name: Checkpointer(checkpoint_dir, name, every=checkpoint_every, resume=resume)  # noqa: E731
        else:
            ckpt = lambda name: None  # noqa: E731
        features = [featurize(t, cfg.feature_spec) for t in trajs]
        self.feature_scaler = standardizer_fit(features)
        fs = [self.feature_scaler.transform(f) for f in features]
        timings["featurize"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        self.encoder, self.projection, enc_hist = fit_srv(
            fs, cfg.lag, k, key=k_enc, hidden=cfg.encoder_hidden, batch_norm=cfg.encoder_batch_norm,
            learning_rate=cfg.encoder_learning_rate, batch_size=cfg.encoder_batch_size, max_epochs=cfg.encoder_epochs,
            patience=cfg.encoder_patience, val_fraction=cfg.val_fraction, progress=progress, checkpoint=ckpt("encoder"),
        )
        self.timestep = float(trajs[0].timestep) if trajs[0].n_frames > 1 else 1.0
        ts = implied_timescales(self.projection.eigenvalues, cfg.lag * self.timestep)
        train_vamp2 = _eval_mode_vamp2(self.encoder, fs, cfg.lag, cfg.val_fraction)
        self.latent_dim = cfg.latent_dim if cfg.latent_dim is not None else choose_latent_dim(ts)
        psi = [srv_transform(self.encoder, self.projection, f, self.latent_dim) for f in fs]
        timings["encoder"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        self.latent_scaler = minmax_fit(np.concatenate(psi))
        u = [np.asarray(minmax_transform(self.latent_scaler, jnp.asarray(p, jnp.float32))) for p in psi]
        self.propagator, prop_hist = fit_mdn(
            u, cfg.lag, key=k_prop, n_components=cfg.n_components, hidden=cfg.propagator_hidden,
            scale_floor=cfg.scale_floor, learning_rate=cfg.propagator_learning_rate,
            batch_size=cfg.propagator_batch_size, max_epochs=cfg.propagator_epochs, patience=cfg.propagator_patience,
            val_fraction=cfg.val_fraction, progress=progress, checkpoint=ckpt("propagator"),
        )
        self.propagator_ensemble = None
        if cfg.ensemble_size:
            from lss_jax.ensemble import fit_mdn_ensemble

            self.propagator_ensemble, _ = fit_mdn_ensemble(
                u, cfg.lag, key=jax.random.fold_in(k_prop, 1), n_members=cfg.ensemble_size,
                n_components=cfg.n_components, hidden=cfg.propagator_hidden, scale_floor=cfg.scale_floor,
                learning_rate=cfg.propagator_learning_rate, batch_size=cfg.propagator_batch_size,
                max_epochs=cfg.propagator_epochs, patience=cfg.propagator_patience, val_fraction=cfg.val_fraction,
                progress=progress, checkpoint=ckpt("ensemble"),
            )
        timings["propagator"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        self.atom_indices = np.asarray(atoms)
        sliced = [t.atom_slice(atoms) for t in trajs]
        self.reference = sliced[0][0]
        self.decoder, dec_hist = fit_decoder(
            [t.xyz for t in sliced], u, key=k_dec, topology=self.reference.topology, reference=self.reference.xyz[0],
            config=cfg.decoder_config, val_fraction=cfg.val_fraction, progress=progress, checkpoint=ckpt("decoder"),
        )
        timings["decoder"] = time.perf_counter() - t0

        rng = np.random.default_rng(cfg.seed)
        all_u = np.concatenate(u)
        self.start_points = all_u[rng.choice(len(all_u), size=min(len(all_u), 10_000), replace=False)]
        self.info = {
            "n_trajectories": len(trajs),
            "n_frames": int(sum(len(t) for t in trajs)),
            "shortest_trajectory": int(shortest),
            "n_features": int(n_features),
            "timestep_ps": self.timestep,
            "lag_time_ps": cfg.lag * self.timestep,
            "srv_eigenvalues": self.projection.eigenvalues.tolist(),
            "srv_timescales_ps": ts.tolist(),
            "latent_dim": int(self.latent_dim),
            "encoder": {"epochs": enc_hist.epochs_run, "best_val_vamp2": -min(enc_hist.val_loss),
                        "last_epoch_train_batches_vamp2": -enc_hist.train_loss[-1],
                        "train_vamp2_eval_mode": train_vamp2},
            "propagator": {"epochs": prop_hist.epochs_run, "best_val_nll": min(prop_hist.val_loss)},
            "decoder": {"kind": cfg.decoder, "coordinates": cfg.decoder_coordinates, "epochs": dec_hist.epochs_run,
                        "best_val_loss": float(min(dec_hist.val_loss)), "final_val_loss": float(dec_hist.val_loss[-1]),
                        "seconds": round(dec_hist.seconds, 2)},
            "wall_seconds": {k: round(v, 2) for k, v in timings.items()},
        }
        self._histories = {"encoder": enc_hist, "propagator": prop_hist, "decoder": dec_hist}
        self._fitted = True
        return self

    def _check_fitted(self):
        if not self._fitted:
            raise RuntimeError("this LSS is not fitted yet; call .fit(trajs) or LSS.load(path) first.")

    # ------------------------------------------------------------------ the three maps
    @property
    def decoded_topology(self):
        self._check_fitted()
        return self.reference.topology

    @property
    def lag_time(self) -> float:
        """Time between generated frames (ps if the training trajectories carried ps timesteps)."""
        return self.config.lag * self.timestep

    def encode(self, trajs) -> np.ndarray | list[np.ndarray]:
        """Latent coordinates ``psi [n_frames, latent_dim]`` of a trajectory (or a list of them)."""
        self._check_fitted()
        single = not isinstance(trajs, (list, tuple))
        out = []
        for t in _as_traj_list(trajs):
            if t.n_atoms != self.topology_full.n_atoms:
                raise ValueError(f"trajectory has {t.n_atoms} atoms, the model was trained on {self.topology_full.n_atoms}.")
            f = self.feature_scaler.transform(featurize(t, self.config.feature_spec))
            out.append(srv_transform(self.encoder, self.projection, f, self.latent_dim))
        return out[0] if single else out

    def to_unit(self, psi):
        return np.asarray(minmax_transform(self.latent_scaler, jnp.asarray(psi, jnp.float32)))

    def from_unit(self, u):
        return np.asarray(minmax_inverse(self.latent_scaler, jnp.asarray(u, jnp.float32)))

    def propagate(self, key: jax.Array, psi0, n_steps: int, *, save_every: int = 1, progress: bool = True) -> np.ndarray:
        """Roll out latent trajectories ``[B, n_steps // save_every, latent_dim]`` from ``psi0 [B, latent_dim]``
        (``generate(..., start=psi0, latent_only=True)``)."""
        psi0 = np.atleast_2d(np.asarray(psi0, np.float32))
        return self.generate(key, len(psi0), n_steps, start=psi0, save_every=save_every, latent_only=True,
                             progress=progress)

    def decode_unit(
        self, key: jax.Array, u, *, trajectory_ids=None, first_frame: int = 0, chunk: int = 4096,
        precision: str = "float32", progress: bool | None = None,
    ) -> np.ndarray:
        """Coordinates ``[..., n_atoms, 3]`` (nm) decoded from unit-box latent points ``u [..., latent_dim]``.

        ``u`` is read as trajectories ``[..., n_frames, latent_dim]`` (a 2-D array is one trajectory).
        The generator noise of frame ``t`` of trajectory ``b`` comes from
        ``fold_in(fold_in(key, trajectory_ids[b]), first_frame + t)``, so a frame decodes the same
        whether it is decoded alone, in a chunk, or with its whole trajectory. Rows are decoded in
        blocks of exactly ``chunk`` (the last one padded): one compiled shape, so a frame's bits do not
        depend on how many frames are decoded with it (XLA may round a reduction differently for another
        batch size).
        """
        from lss_jax._progress import progress_bar

        self._check_fitted()
        u = np.asarray(u, np.float32)
        if u.shape[-1:] != (self.latent_dim,):
            raise ValueError(f"latent points must have a last dimension of {self.latent_dim}, got shape {u.shape}.")
        n_frames = u.shape[-2] if u.ndim >= 2 else 1
        flat = u.reshape(-1, self.latent_dim)
        n_traj = len(flat) // n_frames if n_frames else 0
        ids = np.arange(n_traj) if trajectory_ids is None else np.asarray(trajectory_ids)
        if ids.shape != (n_traj,):
            raise ValueError(f"trajectory_ids must have shape [{n_traj}], got {ids.shape}.")
        rows_b = np.repeat(ids.astype(np.int32), n_frames)
        rows_t = np.tile(np.arange(first_frame, first_frame + n_frames, dtype=np.int32), n_traj)
        from lss_jax.decoder import decode_fn

        fn, params = decode_fn(self.decoder, precision)
        cmap = self.decoder.coordinates
        n_atoms = len(self.atom_indices)
        out = np.empty((len(flat), n_atoms, 3), np.float32)
        starts = range(0, len(flat), chunk)
        show = len(starts) >= 4 if progress is None else progress
        for start in progress_bar(iterable=starts, desc="decode", unit="chunk", disable=not show):
            stop = min(start + chunk, len(flat))
            pad = lambda a: np.pad(a[start:stop], [(0, chunk - (stop - start))] + [(0, 0)] * (a.ndim - 1))  # noqa: E731
            xyz = fn(params, cmap, key, jnp.asarray(pad(flat)), jnp.asarray(pad(rows_b)), jnp.asarray(pad(rows_t)))
            out[start:stop] = np.asarray(xyz)[: stop - start]
        return out.reshape(*u.shape[:-1], -1, 3)

    def decode(self, key: jax.Array, psi) -> np.ndarray:
        """Coordinates ``[..., n_atoms, 3]`` (nm) decoded from latent points ``psi [..., latent_dim]``."""
        return self.decode_unit(key, self.to_unit(psi))

    def generate(
        self, key: jax.Array, n_trajectories: int, n_steps: int, *, start=None, save_every: int = 1,
        latent_only: bool = False, return_latent: bool = False, chunk_steps: int | None = None,
        precision: str = "float32", devices=None, propagator=None, progress: bool = True,
    ):
        """Generate new trajectories in memory (for runs larger than memory use
        :func:`lss_jax.simulate.generate_to_directory`, which gives the same frames for the same key).

        Args:
            key: PRNG key.
            n_trajectories: ``B``.
            n_steps: propagator steps (each one lag) per trajectory.
            start: ``None`` (random training frames), an ``mdtraj.Trajectory`` with ``B`` frames to
                encode, or latent points ``[B, latent_dim]``.
            save_every: keep every k-th step.
            latent_only: return only the latent trajectories ``[B, n_frames, latent_dim]``.
            return_latent: return ``(trajectory, latent)``.
            chunk_steps: steps per chunk (memory; results do not depend on it).
            precision: ``"float32"`` (default), ``"tf32"`` or ``"bfloat16"`` matmuls.
            devices: shard the rollout over these devices (e.g. ``jax.devices()``).
            propagator: generate with this MDN instead (e.g. one of :meth:`ensemble_members`).
            progress: show a progress bar.

        Returns:
            An ``mdtraj.Trajectory`` of the decoded atoms with ``B * n_frames`` frames in trajectory-major
            order (trajectory ``b`` is frames ``b * n_frames ... (b + 1) * n_frames - 1``), ``time`` in
            units of the training timestep (ps); or the latent array.
        """
        import mdtraj as md

        from lss_jax._progress import progress_bar
        from lss_jax.simulate import iter_chunks, start_points

        self._check_fitted()
        if n_trajectories < 1 or n_steps < 1:
            raise ValueError(f"n_trajectories and n_steps must be >= 1, got {n_trajectories} and {n_steps}.")
        u0 = start_points(self, key, n_trajectories, start)
        latent, xyz = [], []
        with progress_bar(total=n_trajectories * (n_steps // max(save_every, 1)), desc="LSS generate", unit="frame",
                          unit_scale=True, disable=not progress) as bar:
            for chunk in iter_chunks(self, key, u0, n_steps=n_steps, save_every=save_every, chunk_steps=chunk_steps,
                                     decode=not latent_only, precision=precision, devices=devices,
                                     propagator=propagator):
                latent.append(chunk.latent)
                xyz.append(chunk.xyz)
                bar.update(chunk.latent.shape[0] * chunk.latent.shape[1])
        latent = np.concatenate(latent, axis=1)
        if latent_only:
            return latent
        xyz = np.concatenate(xyz, axis=1)
        times = np.tile(np.arange(1, latent.shape[1] + 1) * save_every * self.lag_time, n_trajectories)
        traj = md.Trajectory(xyz.reshape(-1, *xyz.shape[-2:]), self.decoded_topology, time=times)
        return (traj, latent) if return_latent else traj

    def fingerprint(self) -> str:
        """SHA-256 of everything that generation depends on (weights, scalers, config); names a model."""
        self._check_fitted()
        h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        from lss_jax.decoder import coordinate_map_arrays

        arrays = [self.latent_scaler.low, self.latent_scaler.high, self.start_points, self.atom_indices]
        cmap = coordinate_map_arrays(self.decoder.coordinates)
        arrays += [cmap[k] for k in sorted(cmap) if k != "kind"]
        for net in (self.propagator, self.decoder.network):
            flat = _flat_weights(net)
            arrays += [flat[k] for k in sorted(flat)]
        for a in arrays:
            h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
        return h.hexdigest()

    def trajectory_from_latent(self, key: jax.Array, psi, *, save_every: int = 1):
        """Decode latent trajectories ``psi [B, n_frames, latent_dim]`` into one ``mdtraj.Trajectory``.

        Frames are trajectory-major (trajectory ``b`` is frames ``b * n_frames ... (b + 1) * n_frames - 1``);
        ``time`` counts lags from the start of each trajectory (``save_every`` lags per frame).
        """
        import mdtraj as md

        psi = np.asarray(psi)
        if psi.ndim != 3:
            raise ValueError(f"psi must be [n_trajectories, n_frames, latent_dim], got shape {psi.shape}.")
        xyz = self.decode(key, psi).reshape(-1, len(self.atom_indices), 3)
        times = np.tile(np.arange(1, psi.shape[1] + 1) * save_every * self.lag_time, psi.shape[0])
        return md.Trajectory(xyz, self.decoded_topology, time=times)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model directory (format documented in this module); returns its path."""
        self._check_fitted()
        path = Path(path)
        if not path.parent.exists():
            raise FileNotFoundError(f"parent directory of {path} does not exist; create it first.")
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            np.savez(
                tmp / "arrays.npz",
                feature_mean=self.feature_scaler.mean, feature_std=self.feature_scaler.std,
                srv_mean=self.projection.mean, srv_vectors=self.projection.vectors,
                srv_eigenvalues=self.projection.eigenvalues, latent_low=np.asarray(self.latent_scaler.low),
                latent_high=np.asarray(self.latent_scaler.high), atom_indices=self.atom_indices,
                start_points=self.start_points, timestep=np.float64(self.timestep),
            )
            from lss_jax.decoder import coordinate_map_arrays

            np.savez(tmp / "coordinates.npz", **coordinate_map_arrays(self.decoder.coordinates))
            self.reference.save_pdb(str(tmp / "topology.pdb"))
            full = self.reference.__class__(np.zeros((1, self.topology_full.n_atoms, 3), np.float32), self.topology_full)
            full.save_pdb(str(tmp / "full_topology.pdb"))
            networks = {"encoder": self.encoder, "propagator": self.propagator, "decoder": self.decoder.network}
            if self.decoder.critic is not None:
                networks["critic"] = self.decoder.critic
            for name, net in networks.items():
                np.savez(tmp / f"{name}.npz", **_flat_weights(net))
            if getattr(self, "propagator_ensemble", None) is not None:
                np.savez(tmp / "propagator_ensemble.npz", **_flat_weights(self.propagator_ensemble))
            from lss_jax import __version__

            meta = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "lss_jax_version": __version__,
                "config": self.config.to_dict(),
                "latent_dim": int(self.latent_dim),
                "n_features": int(len(self.feature_scaler.mean)),
                "n_decoded_atoms": int(len(self.atom_indices)),
                "info": self.info,
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

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LSS":
        """Load a model directory written by :meth:`save`, verifying its format version and checksums."""
        import mdtraj as md

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"model directory not found: {path}")
        meta_path = path / "lss.json"
        if not meta_path.is_file():
            raise ModelFormatError(f"{path} has no lss.json: not a model directory, or an interrupted save.")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise ModelFormatError(f"{meta_path} is not valid JSON ({err}); the model directory is corrupted.") from err
        if meta.get("format") != FORMAT_NAME:
            raise ModelFormatError(f"{path} is not an lss_jax model (format {meta.get('format')!r}).")
        version = meta.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelFormatError(
                f"{path} was saved in model format {version} by lss_jax {meta.get('lss_jax_version')}; this "
                f"lss_jax reads format <= {FORMAT_VERSION}. Upgrade lss_jax."
            )
        for name, digest in meta.get("files", {}).items():
            f = path / name
            if not f.is_file():
                raise ModelFormatError(f"{path} is missing {name}; the model directory is incomplete.")
            if sha256_file(f) != digest:
                raise ModelFormatError(f"{f} does not match its checksum; the model directory is corrupted.")
        cfg = LSSConfig.from_dict(meta["config"])
        if version == 1:  # format 1: the cWGAN-GP on aligned Cartesian coordinates, its settings in the config
            cfg = dataclasses.replace(cfg, decoder="wgan", decoder_coordinates="cartesian")
        self = cls(config=cfg)
        arrays = np.load(path / "arrays.npz")
        self.feature_scaler = Standardizer(arrays["feature_mean"], arrays["feature_std"])
        self.projection = SRVProjection(arrays["srv_mean"], arrays["srv_vectors"], arrays["srv_eigenvalues"], cfg.lag)
        self.latent_scaler = MinMaxScaler(jnp.asarray(arrays["latent_low"]), jnp.asarray(arrays["latent_high"]))
        self.atom_indices = arrays["atom_indices"]
        self.start_points = arrays["start_points"]
        self.timestep = float(arrays["timestep"])
        self.latent_dim = int(meta["latent_dim"])
        self.reference = md.load(str(path / "topology.pdb"))
        self.topology_full = md.load_topology(str(path / "full_topology.pdb"))
        n_features, k = int(meta["n_features"]), self.projection.vectors.shape[0]
        rngs = nnx.Rngs(0)
        self.encoder = _load_weights(
            SRVNet(n_features, k, cfg.encoder_hidden, batch_norm=cfg.encoder_batch_norm, rngs=rngs),
            dict(np.load(path / "encoder.npz")),
        )
        self.encoder.eval()
        self.propagator = _load_weights(
            MDN(self.latent_dim, cfg.n_components, cfg.propagator_hidden, scale_floor=cfg.scale_floor, rngs=rngs),
            dict(np.load(path / "propagator.npz")),
        )
        from lss_jax.decoder import CartesianMap, coordinate_map_from_arrays, decoder_template

        if version == 1:
            ref = self.reference.xyz[0]
            cmap = CartesianMap(jnp.asarray(ref), jnp.asarray(arrays["coord_mean"], jnp.float32),
                                jnp.asarray(arrays["coord_std"], jnp.float32))
            weights = {"decoder": "generator.npz", "critic": "critic.npz"}
        else:
            cmap = coordinate_map_from_arrays(np.load(path / "coordinates.npz"))
            weights = {"decoder": "decoder.npz", "critic": "critic.npz"}
        template = decoder_template(cfg.decoder_config, cmap, self.latent_dim)
        network = _load_weights(template.network, dict(np.load(path / weights["decoder"])))
        critic = None
        if template.critic is not None:
            critic = _load_weights(template.critic, dict(np.load(path / weights["critic"])))
        self.decoder = template._replace(network=network, critic=critic)
        self.propagator_ensemble = None
        if "propagator_ensemble.npz" in meta.get("files", {}):
            from lss_jax.ensemble import MDNEnsemble

            self.propagator_ensemble = _load_weights(
                MDNEnsemble(cfg.ensemble_size, self.latent_dim, cfg.n_components, cfg.propagator_hidden,
                            scale_floor=cfg.scale_floor, rngs=rngs),
                dict(np.load(path / "propagator_ensemble.npz")),
            )
        self.info = meta.get("info", {})
        self._fitted = True
        return self

    # ------------------------------------------------------------------ uncertainty
    def _check_ensemble(self):
        self._check_fitted()
        if getattr(self, "propagator_ensemble", None) is None:
            raise ValueError("this model has no propagator ensemble; train it with ensemble_size >= 2 "
                             "(e.g. LSS(lag=5, ensemble_size=5), or ensemble_size = 5 in the train config).")

    def uncertainty(self, psi, *, key: jax.Array | None = None, n_samples: int = 256) -> np.ndarray:
        """Epistemic uncertainty of the kinetics at latent points ``psi [N, latent_dim]`` (nats, ``[N]``):
        the ensemble members' disagreement about the next state (:func:`lss_jax.ensemble.epistemic_uncertainty`)."""
        from lss_jax.ensemble import epistemic_uncertainty

        self._check_ensemble()
        u = np.clip(self.to_unit(np.atleast_2d(np.asarray(psi, np.float32))), 0.0, 1.0)
        key = jax.random.key(0) if key is None else key
        return epistemic_uncertainty(self.propagator_ensemble, u, key=key, n_samples=n_samples)

    def data_density(self, psi) -> np.ndarray:
        """Density of the training data at latent points ``psi [N, latent_dim]`` (Gaussian kernel estimate
        from the stored training frames, in unit-box coordinates)."""
        from lss_jax.ensemble import data_density

        self._check_fitted()
        return data_density(self.start_points, np.clip(self.to_unit(np.atleast_2d(np.asarray(psi, np.float32))), 0, 1))

    def ensemble_members(self) -> list[MDN]:
        """The ensemble's propagators as standalone MDNs (empty without an ensemble)."""
        from lss_jax.ensemble import member

        if getattr(self, "propagator_ensemble", None) is None:
            return []
        return [member(self.propagator_ensemble, k) for k in range(self.propagator_ensemble.n_members)]
