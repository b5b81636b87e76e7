"""The fitted simulator as a value: :func:`fit_lss` turns MD trajectories into an :class:`LSSModel`.

An :class:`LSSModel` is an immutable pytree (``flax.struct``): the feature standardizer, the SRV
projection, the latent box, the three networks (flax NNX modules, themselves pytrees), the decoded atoms
and the start points for generation, with the configuration, topologies and training summary as static
metadata. Fitting never changes a model; it makes a new one (deeptime's ``Estimator.fit().fetch_model()``).
Every operation that draws random numbers takes its PRNG key first. (Not run as doctests: training takes a
minute or more; ``tests/test_model.py`` fits and checks models.)

    >>> model = fit_lss(jax.random.key(0), trajs, LSSConfig(lag=5, encoder=EncoderConfig(latent_dim=2)))  # doctest: +SKIP
    >>> new = model.generate(jax.random.key(1), 100, 1000)                          # doctest: +SKIP

:class:`lss_jax.LSS` is the notebook facade over it; :mod:`lss_jax.model.io` reads and writes it.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from lss_jax.config import DISTILLABLE, DecoderConfig, LSSConfig
from lss_jax.data.checks import check_atom_selection, check_decoded_atoms, check_training_data, check_training_input
from lss_jax.data.featurize import Standardizer, feature_names, featurize, standardizer_fit
from lss_jax.data.pairs import lagged_pairs, split_trajectories
from lss_jax.data.stream import TrainingData, as_trajectory_list, training_data
from lss_jax.decoder import Decoder, coordinate_map_arrays, decode_rows, fit_decoder
from lss_jax.encoder import (
    SRVNet,
    SRVProjection,
    below_floor,
    choose_latent_dim,
    fit_srv,
    implied_timescales,
    linear_floor,
    srv_loss,
    srv_transform,
)
from lss_jax.engine import io as _io
from lss_jax.engine.checkpoint import Checkpointer
from lss_jax.generation import stream
from lss_jax.model.directory import flat_weights, save_model
from lss_jax.propagator import MDN, fit_mdn
from lss_jax.propagator.ensemble import data_density, epistemic_uncertainty, fit_mdn_ensemble, member
from lss_jax.propagator.scaling import MinMaxScaler, minmax_fit, minmax_inverse, minmax_transform

__all__ = ["LSSModel", "fit_lss", "as_model"]


@struct.dataclass
class LSSModel:
    """A trained molecular latent space simulator (immutable; a pytree).

    Attributes:
        feature_scaler: standardizer of the encoder's input features.
        projection: the SRV projection (mean, eigenvectors, eigenvalues) of the encoder's outputs.
        latent_scaler: the min-max box that maps latent coordinates to the unit box the propagator runs in.
        encoder: the SRV network (eval mode).
        propagator: the MDN.
        decoder: the fitted :class:`lss_jax.decoder.Decoder`.
        propagator_ensemble: bootstrap MDNs (``config.propagator.ensemble_size``) or ``None``.
        atom_indices: ``[n_decoded]`` atoms of the training topology that the decoder generates.
        reference_xyz: ``[n_decoded, 3]`` the alignment reference of decoded frames (nm).
        start_points: ``[K, latent_dim]`` unit-box training points that generation starts from by default.
        config: the :class:`lss_jax.LSSConfig` it was fitted with (static).
        topology: ``mdtraj.Topology`` of the training frames (static).
        decoded_topology: ``mdtraj.Topology`` of the decoded atoms (static).
        timestep: time between training frames (ps for MD; static).
        latent_dim: dimension of the latent space (static).
        info_json: the training summary as JSON (static; read it as :attr:`info`).
    """

    feature_scaler: Standardizer
    projection: SRVProjection
    latent_scaler: MinMaxScaler
    encoder: SRVNet
    propagator: MDN
    decoder: Decoder
    propagator_ensemble: Any
    atom_indices: np.ndarray
    reference_xyz: np.ndarray
    start_points: np.ndarray
    config: LSSConfig = struct.field(pytree_node=False)
    topology: Any = struct.field(pytree_node=False)
    decoded_topology: Any = struct.field(pytree_node=False)
    timestep: float = struct.field(pytree_node=False)
    latent_dim: int = struct.field(pytree_node=False)
    info_json: str = struct.field(pytree_node=False, default="{}")

    # ------------------------------------------------------------------ what it is
    @property
    def info(self) -> dict:
        """Training summary: data sizes, SRV eigenvalues and timescales, per-network records, wall times."""
        return json.loads(self.info_json)

    @property
    def lag_time(self) -> float:
        """Time between generated frames (ps if the training trajectories carried ps timesteps)."""
        return self.config.lag * self.timestep

    @property
    def reference(self):
        """The decoded atoms at the alignment reference, as a one-frame ``mdtraj.Trajectory``."""
        import mdtraj as md

        return md.Trajectory(np.asarray(self.reference_xyz, np.float32)[None], self.decoded_topology)

    @property
    def topology_full(self):
        """The training topology (alias of :attr:`topology`)."""
        return self.topology

    def fingerprint(self) -> str:
        """SHA-256 of everything generation depends on (weights, scalers, configuration): names a model."""
        # the configuration in the flat form of earlier lss_jax: a model's fingerprint did not change with the nesting
        h = hashlib.sha256(json.dumps(self.config._flat_dict(), sort_keys=True).encode())
        arrays = [self.latent_scaler.low, self.latent_scaler.high, self.start_points, self.atom_indices]
        cmap = coordinate_map_arrays(self.decoder.coordinates)
        arrays += [cmap[k] for k in sorted(cmap) if k != "kind"]
        for net in (self.propagator, self.decoder.network):
            flat = flat_weights(net)
            arrays += [flat[k] for k in sorted(flat)]
        for a in arrays:
            h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
        return h.hexdigest()

    def save(self, path):
        """Write the model directory (:func:`lss_jax.model.io.save_model`); returns its path."""
        return save_model(self, path)

    # ------------------------------------------------------------------ the three maps
    def encode(self, trajs) -> np.ndarray | list[np.ndarray]:
        """Latent coordinates ``psi [n_frames, latent_dim]`` of a trajectory (or a list of them)."""
        single = not isinstance(trajs, (list, tuple))
        out = []
        for t in as_trajectory_list(trajs):
            if t.n_atoms != self.topology.n_atoms:
                raise ValueError(f"trajectory has {t.n_atoms} atoms, the model was trained on {self.topology.n_atoms}.")
            f = self.feature_scaler.transform(featurize(t, self.config.feature_spec))
            out.append(srv_transform(self.encoder, self.projection, f, self.latent_dim))
        return out[0] if single else out

    def to_unit(self, psi) -> np.ndarray:
        """Latent coordinates ``[..., latent_dim]`` in the propagator's unit box."""
        return np.asarray(minmax_transform(self.latent_scaler, jnp.asarray(psi, jnp.float32)))

    def from_unit(self, u) -> np.ndarray:
        """Unit-box points ``[..., latent_dim]`` back in latent coordinates."""
        return np.asarray(minmax_inverse(self.latent_scaler, jnp.asarray(u, jnp.float32)))

    def decode_unit(
        self, key: jax.Array, u, *, trajectory_ids=None, first_frame: int = 0, chunk: int | None = None,
        precision: str = "float32", progress: bool | None = None, return_draws: bool = False, devices=None,
    ):
        """Coordinates ``[..., n_atoms, 3]`` (nm) decoded from unit-box latent points ``u [..., latent_dim]``.

        ``u`` is read as trajectories ``[..., n_frames, latent_dim]`` (a 2-D array is one trajectory).
        The decoder noise of frame ``t`` of trajectory ``b`` comes from
        ``fold_in(fold_in(key, trajectory_ids[b]), first_frame + t)``, so a frame decodes the same
        whether it is decoded alone, in a chunk, or with its whole trajectory. Rows are decoded in
        blocks of exactly ``chunk`` (default :func:`lss_jax.decoder.default_decode_block`: 4096 on a CPU; the last
        one padded): one compiled shape, so a frame's bits do not
        depend on how many frames are decoded with it (XLA may round a reduction differently for another
        batch size). Frames outside the training data's support are drawn again
        (:func:`lss_jax.decoder.decode_rows`); ``return_draws=True`` also returns which draw every frame kept
        (``[..., n_frames]``; 0 the first, ``decoder.redraws + 1`` none inside the support). ``devices``: decode
        the blocks in turn on these devices (e.g. ``jax.devices()`` after :func:`lss_jax.use_every_core`); the bits
        do not depend on it.
        """
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
        out, draws = decode_rows(key, self.decoder, flat, rows_b, rows_t, block=chunk, precision=precision,
                                 progress=progress, devices=devices)
        out = out.reshape(*u.shape[:-1], -1, 3)
        return (out, draws.reshape(u.shape[:-1])) if return_draws else out

    def decode(self, key: jax.Array, psi) -> np.ndarray:
        """Coordinates ``[..., n_atoms, 3]`` (nm) decoded from latent points ``psi [..., latent_dim]``."""
        return self.decode_unit(key, self.to_unit(psi))

    def with_noise_memory(self, rho, trajs=None, *, seed: int = 0) -> "LSSModel":
        """A copy whose decoder noise has memory ``rho`` along each trajectory (the correlation of consecutive
        decoded frames' noise, :func:`lss_jax.decoder.memory_noise`; every frame's law unchanged), recorded in its
        configuration (so in its fingerprint and when saved).

        ``rho = "auto"`` calibrates it on ``trajs``, the training MD (:func:`lss_jax.analysis.memory.
        calibrate_noise_memory`: the ``rho`` whose decoded trajectories keep MD's lag memory of the slow structural
        coordinate beyond ψ), as ``decoder.noise_memory = "auto"`` does at fit: with cross-fitting
        (``data.encoder_fraction < 1``) along the part of each trajectory the encoder did not train on. The
        calibration is in ``info["decoder"]["noise_memory_calibration"]``.
        """
        info = self.info
        info.setdefault("decoder", {})
        if rho == "auto":
            if trajs is None:
                raise ValueError("noise_memory 'auto' is calibrated on MD: pass the training trajectories as trajs.")
            trajs = as_trajectory_list(trajs)
            decoder, memory = calibrate_decoder_memory(
                jax.random.key(seed), self.decoder, [t.xyz[:, self.atom_indices] for t in trajs],
                [self.to_unit(p) for p in self.encode(trajs)], self.config.lag,
                encoder_held_out([t.n_frames for t in trajs], self.config.data.encoder_fraction))
            info["decoder"]["noise_memory_calibration"] = memory
        else:
            checked = self.config.replace(decoder={"noise_memory": rho}).decoder.noise_memory  # the config's checks
            decoder = self.decoder.replace(noise_memory=float(checked))
        info["decoder"]["noise_memory"] = decoder.noise_memory
        return self.replace(decoder=decoder, config=self.config.replace(decoder={"noise_memory": decoder.noise_memory}),
                            info_json=json.dumps(info))

    def with_retrieval(self, trajs, *, seed: int = 0) -> "LSSModel":
        """A copy that decodes by retrieval from ``trajs`` (the training MD): every latent point becomes one of the
        ``decoder.neighbours`` frames of ``trajs`` nearest to it in latent space (``decoder.kind = "knn"``), the
        yardstick of a generative decoder decoding the same latent trajectories (``lss-jax report --retrieval``).
        The trailing ``data.val_fraction`` of each trajectory is left out, as at fit.
        """
        trajs = as_trajectory_list(trajs)
        config = self.config.replace(decoder=DecoderConfig(kind="knn"))
        decoder, _ = fit_decoder(jax.random.key(seed), [t.xyz[:, self.atom_indices] for t in trajs],
                                 [self.to_unit(p) for p in self.encode(trajs)], topology=self.decoded_topology,
                                 reference=self.reference_xyz, config=config.decoder,
                                 val_fraction=config.data.val_fraction, progress=False)
        return self.replace(decoder=decoder, config=config)

    def generate(
        self, key: jax.Array, n_trajectories: int, n_steps: int, *, start=None, save_every: int = 1,
        latent_only: bool = False, return_latent: bool = False, chunk_steps: int | None = None,
        precision: str = "float32", devices=None, propagator=None, progress: bool = True,
    ):
        """Generate new trajectories in memory (for runs larger than memory use
        :func:`lss_jax.generation.simulate.generate_to_directory`, which gives the same frames for the same key).

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

        from lss_jax.engine.progress import progress_bar

        if n_trajectories < 1 or n_steps < 1:
            raise ValueError(f"n_trajectories and n_steps must be >= 1, got {n_trajectories} and {n_steps}.")
        u0 = stream.start_points(key, self, n_trajectories, start)
        latent, xyz = [], []
        with progress_bar(total=n_trajectories * (n_steps // max(save_every, 1)), desc="LSS generate", unit="frame",
                          unit_scale=True, disable=not progress) as bar:
            for chunk in stream.iter_chunks(key, self, u0, n_steps=n_steps, save_every=save_every,
                                                  chunk_steps=chunk_steps, decode=not latent_only, precision=precision,
                                                  devices=devices, propagator=propagator):
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

    def propagate(self, key: jax.Array, psi0, n_steps: int, *, save_every: int = 1, progress: bool = True) -> np.ndarray:
        """Latent trajectories ``[B, n_steps // save_every, latent_dim]`` from ``psi0 [B, latent_dim]``
        (``generate(..., start=psi0, latent_only=True)``)."""
        psi0 = np.atleast_2d(np.asarray(psi0, np.float32))
        return self.generate(key, len(psi0), n_steps, start=psi0, save_every=save_every, latent_only=True,
                             progress=progress)

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

    # ------------------------------------------------------------------ uncertainty
    def _check_ensemble(self):
        if self.propagator_ensemble is None:
            raise ValueError("this model has no propagator ensemble; train it with propagator.ensemble_size >= 2 "
                             "(e.g. LSS(lag=5, propagator={'ensemble_size': 5}), or ensemble_size = 5 under [propagator] "
                             "in the train config).")

    def uncertainty(self, key: jax.Array, psi, *, n_samples: int = 256) -> np.ndarray:
        """Epistemic uncertainty of the kinetics at latent points ``psi [N, latent_dim]`` (nats, ``[N]``):
        the ensemble members' disagreement about the next state (:func:`lss_jax.propagator.ensemble.epistemic_uncertainty`)."""
        self._check_ensemble()
        u = np.clip(self.to_unit(np.atleast_2d(np.asarray(psi, np.float32))), 0.0, 1.0)
        return epistemic_uncertainty(key, self.propagator_ensemble, u, n_samples=n_samples)

    def data_density(self, psi) -> np.ndarray:
        """Density of the training data at latent points ``psi [N, latent_dim]`` (Gaussian kernel estimate
        from the stored training frames, in unit-box coordinates)."""
        return data_density(self.start_points, np.clip(self.to_unit(np.atleast_2d(np.asarray(psi, np.float32))), 0, 1))

    def ensemble_members(self) -> list[MDN]:
        """The ensemble's propagators as standalone MDNs (empty without an ensemble)."""
        if self.propagator_ensemble is None:
            return []
        return [member(self.propagator_ensemble, k) for k in range(self.propagator_ensemble.n_members)]


def as_model(model) -> LSSModel:
    """The :class:`LSSModel` of a fitted :class:`lss_jax.LSS` facade, or ``model`` itself."""
    if isinstance(model, LSSModel):
        return model
    fetch = getattr(model, "fetch_model", None)
    if fetch is None:
        raise TypeError(f"expected an LSSModel or a fitted lss_jax.LSS, got {type(model).__name__}.")
    return fetch()


def encoder_held_out(lengths, encoder_fraction: float) -> list[int] | None:
    """First frame of the part of each trajectory the encoder does not train on (cross-fitting: the trailing
    ``1 - encoder_fraction``, the propagator's part), or ``None`` without cross-fitting.

    Example:
        >>> encoder_held_out([100, 40], 0.3), encoder_held_out([100], 1.0)
        ([30, 12], None)
    """
    if encoder_fraction >= 1:
        return None
    _, tails = split_trajectories([np.zeros(n) for n in lengths], 1 - encoder_fraction)
    return [n - len(t) for n, t in zip(lengths, tails)]


def calibrate_decoder_memory(key: jax.Array, decoder: Decoder, xyz, u, lag: int,
                             starts=None) -> tuple[Decoder, dict]:
    """``decoder`` with the noise memory :func:`lss_jax.analysis.memory.calibrate_noise_memory` finds on the
    training frames ``xyz`` (a list of ``[T, n_atoms, 3]``, the decoded atoms) and their unit-box latent points
    ``u`` (paths from frame ``starts[i]`` of each on; frames decoded with ``key``), and the calibration's record."""
    from lss_jax.analysis.memory import calibrate_noise_memory

    def decode(rho, points, rows_b, rows_t):
        return decode_rows(key, decoder.replace(noise_memory=rho), points, rows_b, rows_t, progress=False)[0]

    rho, memory = calibrate_noise_memory(decode, list(xyz), list(u), lag, starts=starts)
    return decoder.replace(noise_memory=rho), memory


def _eval_mode_vamp2(encoder, features, lag: int, val_fraction: float, max_pairs: int = 200_000) -> float:
    """VAMP-2 of the trained encoder on all training pairs (at most ``max_pairs``, evenly spaced) in eval mode.

    The training log's VAMP-2 is a mean over minibatches in train mode (batch-norm statistics of each batch,
    covariances of 2000 pairs), the validation VAMP-2 uses eval mode on held-out pairs: this number, eval mode
    on the training pairs, tells a gap from batch norm and minibatch estimates (log vs this) from one of
    generalization (this vs validation).
    """
    train, _ = split_trajectories(features, val_fraction)
    x0, xt = lagged_pairs(train, lag)
    keep = np.linspace(0, len(x0) - 1, min(len(x0), max_pairs)).astype(int)
    return -float(srv_loss(encoder, (jnp.asarray(x0[keep]), jnp.asarray(xt[keep]))))


def fit_lss(
    key: jax.Array, trajs, config: LSSConfig, *, progress: bool = True, checkpoint_dir=None, resume: bool = False,
    checkpoint_every: int = 1,
) -> LSSModel:
    """Train encoder, propagator and decoder on one or many ``mdtraj.Trajectory`` objects.

    Lagged pairs never straddle two trajectories; the trailing ``config.data.val_fraction`` of each one is
    held out for early stopping. Every input is checked before any training
    (:func:`lss_jax.data.checks.check_training_input`), and so are the data themselves: they must move
    (:func:`lss_jax.data.checks.check_training_data`).

    Args:
        key: PRNG key (split into the encoder's, the propagator's and the decoder's; the start points of generation
            and the self-consistency rollouts draw from subkeys of their own).
        trajs: training trajectories (``mdtraj.Trajectory`` or a list of them, one topology), or their
            :class:`lss_jax.data.stream.TrainingData` (:func:`lss_jax.data.stream.load_training_data` streams
            files into one, holding only the features and the decoded atoms).
        config: the settings.
        progress: show progress bars.
        checkpoint_dir: save the training state of each network here (``encoder``, ``propagator``,
            ``decoder`` checkpoints, format in :mod:`lss_jax.engine.checkpoint`) every ``checkpoint_every`` epochs.
            The directory is locked while training (:func:`lss_jax.engine.io.exclusive_output`): a second run given
            the same directory is refused.
        resume: continue from the checkpoints in ``checkpoint_dir`` (finished networks are not
            retrained); the final model is bitwise that of an uninterrupted run on the same machine.
            Without ``resume`` an existing checkpoint is an error.

    Returns:
        The fitted :class:`LSSModel`.

    References:
        H. Sidky, W. Chen, A. L. Ferguson, "Molecular latent space simulators", Chem. Sci. 11, 9459 (2020).
    """
    import contextlib

    owned = contextlib.nullcontext() if checkpoint_dir is None else _io.exclusive_output(
        checkpoint_dir, what="checkpoint directory", how_to_fix="wait for that training run to finish, or give "
        "another checkpoint directory")
    with owned:
        return _fit_lss(key, trajs, config, progress=progress, checkpoint_dir=checkpoint_dir, resume=resume,
                        checkpoint_every=checkpoint_every)


def _fit_lss(key, trajs, config, *, progress, checkpoint_dir, resume, checkpoint_every) -> LSSModel:
    cfg = config
    k_enc, k_prop, k_dec = jax.random.split(key, 3)
    timings = {}
    t0 = time.perf_counter()
    if isinstance(trajs, TrainingData):
        data = trajs
        check_decoded_atoms(data.topology, data.atom_indices, cfg)  # data read for one decoder, fitted with another
        check_training_input(data.lengths, cfg, n_features=data.features[0].shape[1])
    else:  # check everything before featurizing
        trajs = as_trajectory_list(trajs)
        check_atom_selection(trajs[0].topology, cfg.data.atom_selection)
        check_training_input([len(t) for t in trajs], cfg, n_features=len(feature_names(trajs[0].topology,
                                                                                        cfg.feature_spec)))
        data = training_data(trajs, cfg)
    topology, atoms, n_features = data.topology, data.atom_indices, data.features[0].shape[1]
    for line in check_training_data(data.features, cfg, feature_names=feature_names(topology, cfg.feature_spec)):
        warnings.warn(line, stacklevel=3)  # the data must move: checked before any checkpoint is written
    k = cfg.encoder.n_outputs
    if checkpoint_dir is not None:
        ckpt = lambda name: Checkpointer(checkpoint_dir, name, every=checkpoint_every, resume=resume)  # noqa: E731
    else:
        ckpt = lambda name: None  # noqa: E731
    feature_scaler = standardizer_fit(data.features)
    fs = [feature_scaler.transform(f) for f in data.features]
    timings["featurize"] = time.perf_counter() - t0
    # cross-fitting: encoder on the leading part of every trajectory, propagator on the trailing part
    val_fraction = cfg.data.val_fraction
    cross_fit = cfg.data.encoder_fraction < 1
    enc_fs, prop_part = split_trajectories(fs, 1 - cfg.data.encoder_fraction) if cross_fit else (fs, None)

    t0 = time.perf_counter()
    encoder, projection, enc_hist = fit_srv(k_enc, enc_fs, cfg.lag, k, config=cfg.encoder, val_fraction=val_fraction,
                                            progress=progress, checkpoint=ckpt("encoder"))
    timestep = data.timestep
    ts = implied_timescales(projection.eigenvalues, cfg.lag * timestep)
    train_vamp2 = _eval_mode_vamp2(encoder, enc_fs, cfg.lag, val_fraction)
    floor = linear_floor(encoder, enc_fs, cfg.lag, val_fraction=val_fraction)
    tica_ts = implied_timescales(floor.pop("tica_eigenvalues"), cfg.lag * timestep)
    floor.update(tica_timescales_ps=tica_ts.tolist(), tica_path=encoder.linear is not None, below=below_floor(floor))
    # the timescale gap is judged on the better of the two estimates, so that a slow process TICA sees is kept
    ts_gap = np.fmax(ts[:k], tica_ts[: len(ts[:k])])
    latent_dim = (cfg.encoder.latent_dim if cfg.encoder.latent_dim is not None
                  else choose_latent_dim(ts_gap, min_dim=cfg.encoder.min_latent_dim))
    psi = [srv_transform(encoder, projection, f, latent_dim) for f in fs]
    timings["encoder"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    latent_scaler = minmax_fit(np.concatenate(psi))
    u = [np.asarray(minmax_transform(latent_scaler, jnp.asarray(p, jnp.float32))) for p in psi]
    u_prop = [x[len(x) - len(p):] for x, p in zip(u, prop_part)] if cross_fit else u
    propagator, prop_hist = fit_mdn(k_prop, u_prop, cfg.lag, config=cfg.propagator, val_fraction=val_fraction,
                                    progress=progress, checkpoint=ckpt("propagator"))
    ensemble = None
    if cfg.propagator.ensemble_size:
        ensemble, _ = fit_mdn_ensemble(
            jax.random.fold_in(k_prop, 1), u_prop, cfg.lag, config=cfg.propagator,
            n_members=cfg.propagator.ensemble_size, val_fraction=val_fraction, progress=progress,
            checkpoint=ckpt("ensemble"),
        )
    timings["propagator"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    decoded_topology = data.decoded_topology
    reference = data.xyz[0][0]
    decoder, dec_hist = fit_decoder(
        k_dec, data.xyz, u, topology=decoded_topology, reference=reference,
        config=cfg.decoder, val_fraction=val_fraction, progress=progress, checkpoint=ckpt("decoder"),
    )
    memory = None
    if cfg.decoder.noise_memory == "auto":  # calibrated to the training MD's memory beyond psi
        decoder, memory = calibrate_decoder_memory(jax.random.fold_in(k_dec, 0x3E3), decoder, data.xyz, u, cfg.lag,
                                                   encoder_held_out([len(x) for x in u], cfg.data.encoder_fraction))
        cfg = cfg.replace(decoder={"noise_memory": decoder.noise_memory})
    timings["decoder"] = time.perf_counter() - t0

    # start points from a subkey of their own: fold_in leaves the networks' keys (split above) as they were
    all_u = np.concatenate(u)
    pick = jax.random.choice(jax.random.fold_in(key, 0x57A7), len(all_u), (min(len(all_u), 10_000),), replace=False)
    start = all_u[np.asarray(pick)]
    info = {
        "n_trajectories": len(data.lengths),
        "n_frames": int(sum(data.lengths)),
        "encoder_frames": int(sum(len(f) for f in enc_fs)),
        "propagator_frames": int(sum(len(x) for x in u_prop)),
        "shortest_trajectory": int(min(data.lengths)),
        "n_features": int(n_features),
        "timestep_ps": timestep,
        "lag_time_ps": cfg.lag * timestep,
        "srv_eigenvalues": projection.eigenvalues.tolist(),
        "srv_timescales_ps": ts.tolist(),
        "latent_dim": int(latent_dim),
        "encoder": {"epochs": enc_hist.epochs_run, "best_val_vamp2": -min(enc_hist.val_loss),
                    "last_epoch_train_batches_vamp2": -enc_hist.train_loss[-1],
                    "train_vamp2_eval_mode": train_vamp2, "best_epoch": enc_hist.best_epoch,
                    "linear_floor": floor},
        "propagator": {"epochs": prop_hist.epochs_run, "best_val_nll": min(prop_hist.val_loss)},
        "decoder": {"kind": cfg.decoder.kind, "coordinates": cfg.decoder.coordinates, "epochs": dec_hist.epochs_run,
                    "best_val_loss": float(min(dec_hist.val_loss)), "final_val_loss": float(dec_hist.val_loss[-1]),
                    "seconds": round(dec_hist.seconds, 2),
                    "states": int(getattr(decoder.network, "n_states", 0)),  # 0: a network without states (knn, wgan)
                    **({"state_features": cfg.decoder.state_features} if cfg.decoder.kind == "chain" else {}),
                    **({"rare_state_anchors": int(decoder.network.classifier.anchors[...].shape[0])}
                       if hasattr(decoder.network, "classifier") else {}),
                    **({"sampler_steps": decoder.flow_steps, "sampler_solver": decoder.flow_solver,
                        "distilled": bool(cfg.decoder.distill_steps)}
                       if cfg.decoder.kind in DISTILLABLE else {}),
                    **({"noise_memory": decoder.noise_memory} if decoder.noise_memory else {}),
                    **({"noise_memory_calibration": memory} if memory else {}),
                    **({"template_time": cfg.decoder.template_time,
                        "template_frames": int(decoder.network.neighbours.latents[...].shape[0])}
                       if cfg.decoder.template_time else {})},
        "wall_seconds": {k: round(v, 2) for k, v in timings.items()},
    }
    model = LSSModel(
        feature_scaler=feature_scaler, projection=projection, latent_scaler=latent_scaler, encoder=encoder,
        propagator=propagator, decoder=decoder, propagator_ensemble=ensemble, atom_indices=np.asarray(atoms),
        reference_xyz=np.asarray(reference, np.float32), start_points=start, config=cfg, topology=topology,
        decoded_topology=decoded_topology, timestep=timestep, latent_dim=int(latent_dim),
        info_json=json.dumps(info),
    )
    # kinetic self-consistency: propagator vs SRV on held-out frames, wall reflections (lss_jax.analysis.consistency)
    from lss_jax.analysis import consistency

    t0 = time.perf_counter()
    # the SRV's out-of-sample timescales: on its validation block, or (cross-fitting) on the propagator's frames
    train_fs, heldout_fs = (enc_fs, prop_part) if cross_fit else split_trajectories(fs, val_fraction)
    summary = consistency.summarize(jax.random.fold_in(key, 0xC0), model, heldout_fs, training_features=train_fs)
    for line in summary["warnings"]:
        warnings.warn(line, stacklevel=3)
    info["consistency"] = summary
    info["wall_seconds"]["consistency"] = round(time.perf_counter() - t0, 2)
    return model.replace(info_json=json.dumps(info))


