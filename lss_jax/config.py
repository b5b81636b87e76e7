"""What an LSS is fitted with: :class:`LSSConfig`, and the checks of training input shared by the library
and the command line (one place, so that both say the same thing about the same mistake).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from lss_jax.data.featurize import FeatureSpec

__all__ = ["LSSConfig", "check_training_input", "check_training_data", "check_atom_selection"]


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
    # < 1: cross-fitting. The encoder trains on this leading fraction of every trajectory, the propagator on the
    # rest, so the propagator learns the latent kinetics of frames the encoder never saw (as new MD will look to
    # it) instead of the encoder's in-sample ones, whose slowest process is slower than out of sample.
    encoder_fraction: float = 1.0
    # SRV encoder
    encoder_hidden: tuple[int, ...] = (100, 100)
    encoder_batch_norm: bool = True
    encoder_learning_rate: float = 1e-3
    encoder_batch_size: int = 2000
    encoder_epochs: int = 50
    encoder_patience: int = 5
    # the linear floor: an SRV that ends below TICA's VAMP-2 on the training or validation pairs is trained again
    # from TICA with a residual linear path, which never ends below it (lss_jax.encoder.fit_srv). Off by default
    # until the alanine dipeptide sweep is re-measured with it (it changes most of the shipped models' encoders);
    # the comparison itself is always made, printed and recorded (info["encoder"]["linear_floor"]).
    encoder_linear_floor: bool = False
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
    decoder: str = "flow"  # "flow" (conditional flow matching), "wgan" (the paper's cWGAN-GP), "knn" (retrieval),
    # "chain" (flow matching on a chain's Cartesian coordinates, a transformer over beads; ignores decoder_coordinates)
    decoder_coordinates: str = "internal"  # "internal" (Z-matrix, NeRF) or "cartesian" (aligned, the paper's)
    decoder_hidden: tuple[int, ...] | None = None  # flow: 3 x 256; wgan: 3 x 200
    decoder_learning_rate: float | None = None  # flow: 1e-3 cosine-decayed; wgan: 2e-4
    decoder_batch_size: int = 256
    decoder_epochs: int | None = None  # flow: 300 passes over the frames; wgan: what 20 000 iterations need
    decoder_iterations: int | None = None  # if set: this many optimizer steps (wgan: generator updates)
    decoder_patience: int = 30
    decoder_max_steps: int = 60_000  # flow trained by epochs: at most this many optimizer steps (large data)
    decoder_lr_decay: bool | None = None  # flow: cosine decay; wgan: constant, as in the paper
    flow_steps: int = 10  # steps of the flow's sampling ODE (with distillation: the teacher's, for its couplings)
    flow_solver: str = "heun"  # "heun", "midpoint" or "euler"
    distill_steps: int = 0  # flow, chain: k >= 1 distils the trained flow into k Euler steps (lss_jax.decoder.distill)
    distill_iterations: int | None = None  # the distillation's optimizer steps (default: the flow's, at most 20 000)
    decoder_states: int = 16  # flow, internal coordinates: at most 16 structural states (0: none)
    noise_dim: int = 50
    critic_hidden: tuple[int, ...] | None = None
    decoder_condition: str = "input"  # wgan: "every_layer" feeds the latent point to every layer
    n_critic: int = 5
    gp_weight: float = 10.0
    decoder_redraws: int = 8  # frames outside the training data's support are drawn again, up to this often
    decoder_support_margin: float = 0.9  # atoms >= 3 bonds apart keep 0.9x their smallest training distance
    decoder_neighbours: int = 20  # knn: pick among the 20 training frames nearest in latent space
    decoder_max_frames: int = 100_000  # knn: store at most this many training frames
    decoder_temperature: float | None = None  # chain: the prior's noise is scaled by this at sampling (0.8; 1: none)

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
        if not isinstance(self.encoder_linear_floor, bool):
            raise ValueError(f"encoder_linear_floor must be true or false, got {self.encoder_linear_floor!r}.")
        if isinstance(self.encoder_fraction, bool) or not 0 < self.encoder_fraction <= 1:
            raise ValueError(f"encoder_fraction must be in (0, 1] (1: encoder and propagator train on the same frames; "
                             f"e.g. 0.5 for cross-fitting on halves), got {self.encoder_fraction!r}.")
        self.decoder_config  # validates the decoder settings

    @property
    def decoder_config(self):
        """The decoder fields as a :class:`lss_jax.decoder.DecoderConfig`."""
        from lss_jax.decoder import DecoderConfig

        return DecoderConfig(
            kind=self.decoder, coordinates=self.decoder_coordinates, hidden=self.decoder_hidden,
            learning_rate=self.decoder_learning_rate, batch_size=self.decoder_batch_size, epochs=self.decoder_epochs,
            iterations=self.decoder_iterations, patience=self.decoder_patience, max_steps=self.decoder_max_steps,
            lr_decay=self.decoder_lr_decay,
            flow_steps=self.flow_steps, flow_solver=self.flow_solver, distill_steps=self.distill_steps,
            distill_iterations=self.distill_iterations,
            states=self.decoder_states,
            noise_dim=self.noise_dim, critic_hidden=self.critic_hidden, condition=self.decoder_condition,
            n_critic=self.n_critic,
            gp_weight=self.gp_weight, redraws=self.decoder_redraws, support_margin=self.decoder_support_margin,
            neighbours=self.decoder_neighbours, max_frames=self.decoder_max_frames,
            temperature=self.decoder_temperature,
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

    def to_toml(self) -> str:
        """This configuration as a ``--config`` file of ``lss-jax train``: one ``key = value`` line per field.

        TOML has no ``None``: a field that is ``None`` and ``None`` by default is left out (read back, it is
        ``None`` again); one that is ``None`` against a default (``distances=None``) raises ``ValueError``.

        Example:
            >>> import tomllib
            >>> config = LSSConfig(lag=5, latent_dim=2, encoder_hidden=(32, 32))
            >>> text = config.to_toml()
            >>> text.splitlines()[:2]
            ['lag = 5', 'latent_dim = 2']
            >>> LSSConfig.from_dict(tomllib.loads(text)) == config
            True
        """
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        lost = [k for k, v in self.to_dict().items() if v is None and defaults[k] is not None]
        if lost:
            raise ValueError(f"{', '.join(lost)} = None cannot be written in TOML (a missing key means the default, "
                             f"{', '.join(repr(defaults[k]) for k in lost)}); pass the configuration in Python instead.")
        return "".join(f"{k} = {_toml_value(v)}\n" for k, v in self.to_dict().items() if v is not None)

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(torsions=tuple(self.torsions), distances=self.distances)


def _toml_value(v) -> str:
    """A TOML value: booleans, numbers, strings and (nested) lists of them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_atom_selection(topology, selection: str) -> np.ndarray:
    """Indices of the atoms ``selection`` picks in ``topology`` (all atoms for an empty selection), or a
    ``ValueError`` that says how to fix the selection.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> len(check_atom_selection(load_alanine_dipeptide("train", stride=25_000).topology, "not element H"))
        10
    """
    from lss_jax.data.featurize import _selection_error

    if not selection:
        return np.arange(topology.n_atoms)
    try:
        atoms = topology.select(selection)
    except Exception as err:  # mdtraj's selection parser raises several types, with multi-line messages
        raise ValueError(
            f"atom_selection {selection!r} is not a valid mdtraj selection ({_selection_error(err)}); "
            "use e.g. 'not element H' or 'all'."
        ) from err
    if len(atoms) == 0:
        raise ValueError(
            f"atom_selection {selection!r} matches no atom of the topology; use e.g. 'not element H' or 'all'.")
    return np.asarray(atoms)


def check_training_input(
    lengths: Sequence[int],
    config: LSSConfig,
    *,
    n_features: int | None = None,
    names: Sequence[str] | None = None,
    lag_name: str = "lag",
    stride_name: str | None = None,
) -> None:
    """Check, before any training, that trajectories of ``lengths`` frames can train an LSS with ``config``.

    Every message says what was wrong and how to fix it. The command line passes the file ``names``,
    ``lag_name="--lag"`` and ``stride_name="--stride K"`` so that its messages name what the user typed.

    Args:
        lengths: frames per trajectory.
        config: the settings to train with.
        n_features: number of encoder features (checked against the latent dimension).
        names: how to name each trajectory in a message (default ``"trajectory i"``).
        lag_name: how to name the lag in a message.
        stride_name: the subsampling the frame counts are after, if any (e.g. ``"--stride 2"``).

    Example:
        >>> check_training_input([1000, 800], LSSConfig(lag=5))
        >>> try:
        ...     check_training_input([1000, 3], LSSConfig(lag=5))
        ... except ValueError as err:
        ...     print(err)
        trajectory 1 has 3 frames, not more than lag 5, so it gives no lagged pair; drop it or use a shorter lag.
    """
    lengths = [int(n) for n in lengths]
    if not lengths:
        raise ValueError("no trajectory given.")
    names = [f"trajectory {i}" for i in range(len(lengths))] if names is None else list(names)
    lag = config.lag
    after = f" after {stride_name}" if stride_name else ""
    if max(lengths) <= lag + 1:
        raise ValueError(
            f"{lag_name} {lag} is not shorter than the trajectories (longest: {max(lengths)} frames{after}); "
            f"use a shorter {lag_name} or longer trajectories.")
    for name, n in zip(names, lengths):
        if n <= lag:
            raise ValueError(f"{name} has {n} frames{f' ({after.strip()})' if after else ''}, not more than {lag_name} "
                             f"{lag}, so it gives no lagged pair; drop it or use a shorter {lag_name}.")
    k = config.latent_dim if config.latent_dim is not None else config.max_latent_dim
    if n_features is not None and k > n_features:
        which = "latent_dim" if config.latent_dim is not None else "max_latent_dim"
        raise ValueError(
            f"latent dimension {k} ({which}) exceeds the number of features ({n_features}); lower {which} "
            "or add features (torsions, distances).")
    need = 2 * k + 2  # pairs per batch to estimate the k x k SRV covariances
    if config.encoder_batch_size < need:
        raise ValueError(
            f"encoder_batch_size ({config.encoder_batch_size}) is too small to estimate {k}x{k} covariances; "
            f"raise it to at least {need}.")
    parts = {"": lengths}
    if config.encoder_fraction < 1:  # cross-fitting: as lss_jax.data.pairs.split_trajectories(..., 1 - fraction)
        tail = [round((1 - config.encoder_fraction) * n) for n in lengths]
        parts = {" in the encoder's part": [n - t for n, t in zip(lengths, tail)], " in the propagator's part": tail}
    for part, part_lengths in parts.items():
        n_val = [round(config.val_fraction * n) for n in part_lengths]  # as lss_jax.data.pairs.split_trajectories
        train_pairs = sum(max(0, n - v - lag) for n, v in zip(part_lengths, n_val))
        val_pairs = sum(max(0, v - lag) for v in n_val)
        if train_pairs < need or val_pairs < 1:
            split = (f"; encoder_fraction={config.encoder_fraction} gives the encoder the leading and the propagator "
                     f"the trailing part of each trajectory" if part else "")
            raise ValueError(
                f"too few lagged pairs at lag {lag}{part}: {train_pairs} for training and {val_pairs} for validation "
                f"(the last val_fraction={config.val_fraction} of each trajectory{split}); a training batch needs at "
                f"least {need} and validation at least 1. Use longer trajectories or a shorter lag"
                f"{', or encoder_fraction = 1' if part else ''}.")


_ZERO_VARIANCE = 1e-6  # a feature whose standard deviation is below this is one the standardizer cannot scale
_NOISE_FLOOR = 1e-6  # covariance eigenvalues below this fraction of the largest: float32 round-off, not motion


def _row_blocks(x: np.ndarray, size: int = 65536):
    for i in range(0, len(x), size):
        yield np.asarray(x[i: i + size], np.float64)


def check_training_data(
    features: Sequence[np.ndarray],
    config: LSSConfig,
    *,
    feature_names: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
) -> list[str]:
    """Check, before any training, that the features can train an LSS with ``config``: the data must move.

    Refused (``ValueError`` saying what is wrong in the data and what to do):

    * a trajectory that does not move (all its frames identical);
    * features that all have zero variance (the molecule moves only as a rigid body, or not at all);
    * fewer distinct frames than a training batch (the same frames written again and again);
    * a latent dimension the data cannot support: the standardized features vary along fewer independent
      directions than ``latent_dim`` (the other covariance eigenvalues are at the float32 noise floor,
      below 10⁻⁶ of the largest).

    Without such a check these fail deep inside training (a LAPACK "leading minor ... is not positive
    definite" from the SRV's covariances) after checkpoints were written.

    Args:
        features: ``[n_frames, n_features]`` per trajectory (unstandardized).
        config: the settings to train with.
        feature_names: a label per feature column (:func:`lss_jax.data.featurize.feature_names`).
        names: how to name each trajectory in a message (default ``"trajectory i"``).

    Returns:
        Warnings that do not stop training: features with zero variance among others that move (named).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> check_training_data([rng.normal(size=(500, 3))], LSSConfig(lag=1, latent_dim=2))
        []
        >>> try:
        ...     check_training_data([np.ones((500, 3))], LSSConfig(lag=1, latent_dim=2))
        ... except ValueError as err:
        ...     print(str(err)[:52])
        trajectory 0 does not move: its 500 frames are all i
    """
    feats = [np.asarray(f) for f in features]
    names = [f"trajectory {i}" for i in range(len(feats))] if names is None else [str(n) for n in names]
    d = feats[0].shape[1]
    labels = list(feature_names) if feature_names is not None and len(feature_names) == d else [
        f"feature {j}" for j in range(d)]
    # per-feature mean and variance in float64, block by block (no full-size copy), shifted by the first frame
    shift = np.asarray(feats[0][0], np.float64)
    n, s1, s2 = 0, np.zeros(d), np.zeros(d)
    for name, f in zip(names, feats):
        if len(f) > 1 and not np.any(f != f[:1]):
            raise ValueError(
                f"{name} does not move: its {len(f)} frames are all identical (every one of its {d} features has zero "
                "variance). Training learns dynamics from motion; give the production trajectory (not a minimized "
                "structure or one frame written repeatedly), or drop this file.")
        for block in _row_blocks(f):
            block = block - shift
            n, s1, s2 = n + len(block), s1 + block.sum(0), s2 + (block * block).sum(0)
    std = np.sqrt(np.maximum(s2 / n - (s1 / n) ** 2, 0.0))
    zero = np.flatnonzero(std < _ZERO_VARIANCE)

    def listed(idx, most=8):
        shown = ", ".join(labels[j] for j in idx[:most])
        return shown + (f" and {len(idx) - most} more" if len(idx) > most else "")

    if len(zero) == d:
        raise ValueError(
            f"the training data do not move: all {d} features have zero variance over the {n:,} frames ({listed(zero, 4)}); "
            "the molecule keeps one internal structure (at most it moves as a rigid body). Give trajectories in "
            "which the molecule changes shape.")
    warnings = []
    if len(zero):
        warnings.append(
            f"{len(zero)} of {d} features have zero variance over the training data and carry no information: "
            f"{listed(zero)}; they are kept (standardized to 0). Use other feature types (torsions, distances) or "
            "trajectories in which these move.")
    moving = np.flatnonzero(std >= _ZERO_VARIANCE)
    k = config.latent_dim if config.latent_dim is not None else config.max_latent_dim
    which = "latent_dim" if config.latent_dim is not None else "max_latent_dim"
    # distinct frames (rows), by a fixed random projection: distinct rows collide with probability ~0
    rng = np.random.default_rng(0)
    w = rng.normal(size=d)
    sketch = rng.normal(size=(len(moving), min(len(moving), k + 8)))
    mean = s1 / n
    hashes, gram = [], np.zeros((sketch.shape[1],) * 2)
    for f in feats:
        for block in _row_blocks(f):
            hashes.append(block @ w)
            z = (block[:, moving] - shift[moving] - mean[moving]) / std[moving]
            y = z @ sketch
            gram += y.T @ y
    distinct = len(np.unique(np.concatenate(hashes)))
    lag = config.lag
    n_val = [round(config.val_fraction * len(f)) for f in feats]
    train_pairs = sum(max(0, len(f) - v - lag) for f, v in zip(feats, n_val))
    batch = min(config.encoder_batch_size, train_pairs)
    if distinct < batch:
        raise ValueError(
            f"the training data hold only {distinct:,} distinct frames among {n:,} (each one repeated "
            f"{n / distinct:.0f} times on average), fewer than a training batch of {batch:,} lagged pairs: the batch "
            "covariances would be degenerate. Check that the files hold the production run and not repeated frames "
            f"(if they are meant to repeat, lower encoder_batch_size to at most {distinct}).")
    eig = np.linalg.eigvalsh(gram / n)[::-1]  # a random sketch keeps the rank of the standardized covariance
    rank = int(np.sum(eig > _NOISE_FLOOR * eig[0])) if eig[0] > 0 else 0
    if rank < k:
        raise ValueError(
            f"latent dimension {k} ({which}) is more than the data can support: the {len(moving)} moving features vary "
            f"along only {rank} independent direction(s) (the other covariance eigenvalues are at the noise floor, "
            f"below {_NOISE_FLOOR:g} of the largest), so {k} slow coordinates cannot be told apart. Lower {which} to "
            f"at most {rank}, or give data that move in more ways (more features or more varied trajectories).")
    return warnings
