"""The ``LSS`` facade for notebooks: configure, ``fit``, then use the fitted model's methods directly (the fitting
examples are not run as doctests: training takes a minute or more; ``tests/test_model.py`` runs it).

    >>> model = LSS(lag=5, encoder={"latent_dim": 2}).fit(trajs)          # doctest: +SKIP
    >>> new = model.generate(jax.random.key(0), n_trajectories=100, n_steps=1000)  # mdtraj.Trajectory  # doctest: +SKIP

``LSS`` holds an :class:`lss_jax.LSSConfig` and, once fitted or loaded, one immutable
:class:`lss_jax.LSSModel` (``fetch_model()``); every attribute and method of the model is reachable through
the facade. The functional path is ``fit_lss(key, trajs, config) -> LSSModel``; the on-disk format is
documented in :mod:`lss_jax.model.io`.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from lss_jax.config import LSSConfig
from lss_jax.model import LSSModel, fit_lss
from lss_jax.model.io import FORMAT_VERSION, ModelFormatError, load_model

__all__ = ["LSS", "LSSConfig", "LSSModel", "FORMAT_VERSION", "ModelFormatError"]


class LSS:
    """Molecular latent space simulator: SRV encoder + MDN propagator + decoder (flow matching on internal
    coordinates by default; the paper's cWGAN-GP with ``decoder={"kind": "wgan"}``).

    Args:
        lag: propagator/encoder lag in frames.
        config: a whole :class:`LSSConfig` (``lag`` and ``kwargs`` then override its fields).
        **kwargs: fields of :class:`LSSConfig` (:meth:`LSSConfig.replace`): ``seed``, and ``data``, ``encoder``,
            ``propagator``, ``decoder`` each as a whole configuration object or as a dict of the fields to change.
            The flat keywords of earlier lss_jax (``latent_dim=2``, ``decoder_iterations=2000``) are read with a
            :class:`lss_jax.config.FlatConfigWarning` naming the new spelling.

    References:
        H. Sidky, W. Chen, A. L. Ferguson, Chem. Sci. 11, 9459 (2020).

    Example:
        Training takes minutes even on the shipped trajectory, so the lines after the construction are
        not run here (``lss-jax demo`` runs them):

        >>> from lss_jax.config import DecoderConfig
        >>> model = LSS(lag=5, encoder={"latent_dim": 2}, decoder=DecoderConfig(iterations=2000))
        >>> model.config.lag, model.config.encoder.latent_dim, model.config.decoder.iterations
        (5, 2, 2000)
        >>> from lss_jax.datasets import load_alanine_dipeptide

        Not run as doctests (training takes a minute or more; ``tests/test_model.py`` fits models):

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
            config = LSSConfig(lag=lag)
        changes = {**({"lag": lag} if lag is not None else {}), **kwargs}
        if changes:
            config = config.replace(**changes)
        self.config = config
        self._model: LSSModel | None = None

    def fit(
        self, trajs, *, progress: bool = True, checkpoint_dir=None, resume: bool = False, checkpoint_every: int = 1,
    ) -> "LSS":
        """Train on one or many ``mdtraj.Trajectory`` objects with the key ``jax.random.key(config.seed)``
        (:func:`lss_jax.fit_lss` has the arguments); returns ``self``, now holding the fitted model."""
        self._model = fit_lss(jax.random.key(self.config.seed), trajs, self.config, progress=progress,
                              checkpoint_dir=checkpoint_dir, resume=resume, checkpoint_every=checkpoint_every)
        return self

    def fetch_model(self) -> LSSModel:
        """The fitted :class:`LSSModel` (an immutable pytree)."""
        if self._model is None:
            raise RuntimeError("this LSS is not fitted yet; call .fit(trajs) or LSS.load(path) first.")
        return self._model

    @property
    def fitted(self) -> bool:
        return self._model is not None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model directory (format in :mod:`lss_jax.model.io`); returns its path."""
        return self.fetch_model().save(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LSS":
        """Load a model directory written by :meth:`save`, verifying its format version and checksums."""
        return cls.from_model(load_model(path))

    @classmethod
    def from_model(cls, model: LSSModel) -> "LSS":
        """The facade of a fitted :class:`LSSModel` (from :func:`lss_jax.fit_lss` or :func:`lss_jax.load_model`)."""
        self = cls(config=model.config)
        self._model = model
        return self

    def __setattr__(self, name: str, value) -> None:
        if name not in ("config", "_model"):
            raise AttributeError(
                f"an LSS does not grow attributes: its fitted model is an immutable LSSModel; for another {name!r} make "
                f"a new model, e.g. lss.fetch_model().replace({name}=...)")
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # only reached for names the facade itself lacks: the fitted model's fields and methods
        if name.startswith("__") or name == "_model":
            raise AttributeError(name)
        return getattr(self.fetch_model(), name)

    def __repr__(self) -> str:
        state = f"latent_dim={self._model.latent_dim}" if self._model is not None else "not fitted"
        return f"LSS(lag={self.config.lag}, {state})"
