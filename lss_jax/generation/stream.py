"""The streaming core of generation, below :mod:`lss_jax.model` so that ``LSSModel.generate`` runs on it.

:func:`iter_rollout` is the one streaming loop of lss_jax: a simulation run chunk by chunk, each chunk
continuing from the last saved frame of the one before at the next global step (:func:`chunk_plan`).
:func:`iter_chunks` rolls the latent propagator out on it and decodes each chunk; :func:`start_points`
picks or encodes the unit-box start points. They take a fitted :class:`lss_jax.model.LSSModel` by its
attributes and import nothing of :mod:`lss_jax.model` (docs/architecture.md, "Layers"), so that both the
in-memory ``LSSModel.generate`` and :mod:`lss_jax.generation.simulate` (which also accepts the :class:`lss_jax.LSS`
facade, writes chunks to disk and resumes) call the same code and give the same frames. The public names
are :mod:`lss_jax.generation.simulate`'s, which re-exports them: ``iter_rollout``, ``Chunk``, ``chunk_plan``,
``start_points``, ``iter_chunks``, ``default_chunk_steps``, ``CHUNK_BYTES``.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lss_jax.propagator import mdn_apply_fn, rollout

__all__ = ["CHUNK_BYTES", "Chunk", "chunk_plan", "default_chunk_steps", "iter_rollout", "start_points", "iter_chunks"]

CHUNK_BYTES = 256 * 2**20  # default chunk size: about this many bytes of decoded coordinates


class Chunk(NamedTuple):
    """One generated chunk: ``B`` trajectories x ``n_frames`` saved frames.

    Example:
        >>> Chunk(0, 0, np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), None, np.zeros((2, 1))).latent.shape
        (2, 3, 1)
    """

    index: int
    first_frame: int  # global index of the chunk's first saved frame (0 = first frame after the start)
    unit: np.ndarray  # [B, n_frames, latent_dim] unit-box latent coordinates
    latent: np.ndarray  # [B, n_frames, latent_dim] latent coordinates
    xyz: np.ndarray | None  # [B, n_frames, n_atoms, 3] nm, or None for latent-only generation
    carry: np.ndarray  # [B, latent_dim] unit-box state after the chunk


def chunk_plan(n_steps: int, save_every: int, chunk_steps: int) -> list[tuple[int, int]]:
    """``[(first_step, n_steps_in_chunk), ...]`` covering ``n_steps``; chunk sizes are multiples of ``save_every``.

    Example:
        >>> chunk_plan(10, 2, 4)
        [(0, 4), (4, 4), (8, 2)]
    """
    if n_steps < 1 or save_every < 1 or n_steps % save_every:
        raise ValueError(f"n_steps ({n_steps}) must be a positive multiple of save_every ({save_every}).")
    if chunk_steps < 1 or chunk_steps % save_every:
        raise ValueError(f"chunk_steps ({chunk_steps}) must be a positive multiple of save_every ({save_every}).")
    return [(s, min(chunk_steps, n_steps - s)) for s in range(0, n_steps, chunk_steps)]


def default_chunk_steps(n_trajectories: int, n_steps: int, save_every: int, frame_bytes: int) -> int:
    """Chunk length so one chunk holds about :data:`CHUNK_BYTES` of output (results do not depend on it)."""
    frames = max(1, CHUNK_BYTES // max(1, frame_bytes * n_trajectories))
    return min(n_steps, frames * save_every)


def iter_rollout(
    simulate_fn: Callable[[jax.Array, int, int], jax.Array],
    x0,
    *,
    n_steps: int,
    save_every: int = 1,
    chunk_steps: int | None = None,
    first_chunk: int = 0,
) -> Iterator[tuple[int, int, jax.Array]]:
    """The one streaming loop of lss_jax: run ``simulate_fn`` chunk by chunk, each chunk continuing from
    the last saved frame of the one before.

    ``simulate_fn(x, n_steps, start_step) -> frames [B, n_steps // save_every, ...]`` must address its
    noise by the global step (``start_step``), as :func:`lss_jax.propagator.rollout` and
    :func:`lss_jax.systems.four_well.brownian_dynamics` do, so that the frames do not depend on the chunking.
    Generation (:func:`iter_chunks`), :func:`lss_jax.generation.simulate.rollout_with_progress` and the four-well pipeline's
    Brownian dynamics all run on it.

    Args:
        simulate_fn: one chunk of the simulation.
        x0: ``[B, ...]`` the state the chunk ``first_chunk`` starts from.
        n_steps: steps in total (a multiple of ``save_every``).
        save_every: keep every k-th step.
        chunk_steps: steps per chunk (a multiple of ``save_every``; default: all in one).
        first_chunk: start at this chunk of the plan (:func:`chunk_plan`), e.g. after a resume.

    Yields:
        ``(chunk_index, first_step, frames)``.

    Example:
        >>> walk = lambda x, n, s: x[:, None] + jnp.arange(1, n + 1)[None, :]   # one unit per step: x_t = t
        >>> [(i, s, f.tolist()) for i, s, f in iter_rollout(walk, jnp.zeros(1), n_steps=5, chunk_steps=2)]
        [(0, 0, [[1.0, 2.0]]), (1, 2, [[3.0, 4.0]]), (2, 4, [[5.0]])]
    """
    plan = chunk_plan(n_steps, save_every, chunk_steps or n_steps)
    x = x0
    for index in range(first_chunk, len(plan)):
        first_step, steps = plan[index]
        frames = simulate_fn(x, steps, first_step)
        x = frames[:, -1]
        yield index, first_step, frames


def start_points(key: jax.Array, model, n_trajectories: int, start=None) -> np.ndarray:
    """Unit-box start points ``[B, latent_dim]``: random training frames (``start=None``), an
    ``mdtraj.Trajectory`` with ``B`` frames to encode, or latent points ``[B, latent_dim]``.

    ``key`` is the generation key (its first split picks the training frames).
    """
    import mdtraj as md

    if n_trajectories < 1:
        raise ValueError(f"n_trajectories must be >= 1, got {n_trajectories}.")
    k_start = jax.random.split(key, 3)[0]
    if start is None:
        idx = jax.random.randint(k_start, (n_trajectories,), 0, len(model.start_points))
        return np.asarray(model.start_points[np.asarray(idx)], np.float32)
    psi0 = model.encode(start) if isinstance(start, md.Trajectory) else np.atleast_2d(np.asarray(start, np.float32))
    if psi0.shape != (n_trajectories, model.latent_dim):
        raise ValueError(
            f"start must give {n_trajectories} points of dimension {model.latent_dim}, got shape {psi0.shape}.")
    if not np.all(np.isfinite(psi0)):
        raise ValueError("start contains NaN or Inf latent coordinates.")
    return np.clip(model.to_unit(psi0), 0.0, 1.0)


def iter_chunks(
    key: jax.Array,
    model,
    u0,
    *,
    n_steps: int,
    save_every: int = 1,
    chunk_steps: int | None = None,
    trajectory_ids=None,
    first_chunk: int = 0,
    carry=None,
    decode: bool = True,
    precision: str = "float32",
    devices: Sequence[jax.Device] | None = None,
    propagator=None,
) -> Iterator[Chunk]:
    """Yield :class:`Chunk` s of a rollout from unit-box start points ``u0 [B, latent_dim]``.

    Args:
        key: the generation key (see the module docstring of :mod:`lss_jax.generation.simulate` for how it is split).
        model: a fitted :class:`lss_jax.LSSModel` (:func:`lss_jax.generation.simulate.iter_chunks`, which calls this
            one with the :class:`lss_jax.LSSModel` of ``model``, also takes a fitted :class:`lss_jax.LSS`).
        u0: unit-box start points (:func:`start_points`).
        n_steps: propagator steps per trajectory.
        save_every: keep every k-th step.
        chunk_steps: steps per chunk (a multiple of ``save_every``; default about 256 MB of output).
        trajectory_ids: ``[B]`` global trajectory ids (default ``arange(B)``).
        first_chunk, carry: continue at chunk ``first_chunk`` from the unit-box state ``carry [B, m]``.
        decode: decode coordinates (``False``: latent only).
        precision: ``"float32"``, ``"tf32"`` or ``"bfloat16"`` for both networks' matmuls.
        devices: shard the rollout's trajectory batch over these devices, and decode blocks in turn on them.
        propagator: an MDN to use instead of ``model.propagator`` (e.g. an ensemble member).

    ``LSSModel.generate`` and :func:`lss_jax.generation.simulate.iter_chunks` both run this loop, so they give the
    same frames for the same key.
    """
    u0 = np.asarray(u0, np.float32)
    ids = np.arange(len(u0)) if trajectory_ids is None else np.asarray(trajectory_ids)
    frame_bytes = 4 * (2 * model.latent_dim + (3 * len(model.atom_indices) if decode else 0))
    chunk_steps = chunk_steps or default_chunk_steps(len(u0), n_steps, save_every, frame_bytes)
    _, k_roll, k_dec = jax.random.split(key, 3)
    graphdef, params = nnx.split(model.propagator if propagator is None else propagator)
    mixture_fn = mdn_apply_fn(graphdef)
    jids = jnp.asarray(ids, jnp.int32)

    def simulate(x, steps, first_step):
        return rollout(k_roll, mixture_fn, params, x, n_steps=steps, save_every=save_every,
                       boundary=model.config.propagator.boundary, start_step=first_step, trajectory_ids=jids,
                       precision=precision, devices=devices)

    if decode and getattr(model.decoder, "noise_memory", 0.0) and save_every > 1:
        # the decoder noise's memory is per lag (LSSConfig's decoder.noise_memory): saved frames save_every lags apart
        model = model.replace(decoder=model.decoder.replace(noise_memory=model.decoder.noise_memory ** save_every))
    x0 = jnp.asarray(u0 if carry is None else np.asarray(carry, np.float32))
    for index, first_step, unit in iter_rollout(simulate, x0, n_steps=n_steps, save_every=save_every,
                                                chunk_steps=chunk_steps, first_chunk=first_chunk):
        unit = np.asarray(unit)
        first_frame = first_step // save_every
        xyz = model.decode_unit(k_dec, unit, trajectory_ids=ids, first_frame=first_frame, precision=precision,
                                progress=False, devices=devices) if decode else None
        yield Chunk(index, first_frame, unit, model.from_unit(unit), xyz, unit[:, -1].copy())
