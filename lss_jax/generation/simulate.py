"""Generation at scale: chunked latent rollout -> decode -> write, resumable, sharded over devices.

The trajectory length is split into chunks of ``chunk_steps`` propagator steps. Each chunk is rolled
out (continuing from the previous chunk's last latent point), decoded and written to disk before the
next one starts, so peak memory is set by the chunk, not by the trajectory length.

Everything random is addressed, not sequential: the propagator noise of trajectory ``b`` at step
``t`` comes from ``fold_in(fold_in(k_roll, b), t)`` and the decoder noise of its saved frame ``f``
from ``fold_in(fold_in(k_dec, b), f)``, where ``k_start, k_roll, k_dec = jax.random.split(key, 3)``.
Hence, on one machine, the output is bitwise the same for any chunk size, for a run that was
interrupted and resumed, for any split of the trajectories over devices or processes, and equal to
:meth:`lss_jax.LSS.generate` with the same key. Across machine types (CPU vs GPU, different XLA
versions) the float32 arithmetic differs in the last bits, and because the dynamics are chaotic
individual trajectories then diverge after some steps; their statistics do not change.

Output directory (``format_version = 2``; version 1 directories, written before the inverse-CDF mixture
sampler changed the random stream, are read by :func:`load_generated` but not continued):

* ``generation.json``: settings, model fingerprint, and the list of complete chunks with the SHA-256
  of each chunk file. It is rewritten (atomically) after each chunk and is the completion record: a
  chunk file that it does not list, or whose checksum does not match, is regenerated on resume.
* ``start.npy``: ``[B, latent_dim]`` unit-box start points.
* ``latent-NNNNNN.npy``: ``[B, n_frames_in_chunk, latent_dim]`` latent coordinates (float32).
* ``xyz-NNNNNN.npy``: ``[B, n_frames_in_chunk, n_atoms, 3]`` decoded coordinates in nm (float32),
  absent with ``latent_only``.
* ``carry-NNNNNN.npy``: ``[B, latent_dim]`` exact unit-box state after the chunk (what a resume
  continues from).
* ``topology.pdb``: the decoded atoms.

With several processes (``jax.distributed``) each one writes ``process-PPP/`` with its contiguous
share of the trajectories; :func:`load_generated` joins them.
"""

from __future__ import annotations

import errno
import functools
import json
import shutil
import time
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lss_jax.engine import io as _io
from lss_jax.generation import stream
from lss_jax.generation.stream import (  # the streaming core, below lss_jax.model; this module is its public home
    CHUNK_BYTES,  # noqa: F401  (re-exported: the default chunk size)
    Chunk,
    chunk_plan,
    default_chunk_steps,
    iter_rollout,
    start_points,
)
from lss_jax.propagator import rollout

__all__ = [
    "iter_rollout",
    "collect_rollout",
    "rollout_with_progress",
    "Chunk",
    "GenerationSummary",
    "chunk_plan",
    "start_points",
    "iter_chunks",
    "generate_to_directory",
    "load_generated",
    "export_trajectory",
    "check_output_format",
    "check_generation_fits",
    "estimate_generation",
    "process_share",
]

FORMAT_NAME = "lss_jax.generation"
FORMAT_VERSION = 2  # 2: inverse-CDF component choice in lss_jax.propagator.mixture_sample (a new random stream)
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}  # no space, file size limit, quota


class GenerationSummary(NamedTuple):
    """What :func:`generate_to_directory` did."""

    path: Path
    n_trajectories: int
    n_frames: int  # saved frames per trajectory
    simulated_time: float  # total over all trajectories, in the model's time unit (ps for MD)
    seconds: float
    resumed_chunks: int  # chunks found complete on disk and kept


class GenerationSize(NamedTuple):
    """What a generation is expected to need (:func:`estimate_generation`), in bytes."""

    memory: int  # peak memory of the process
    disk: int  # disk space it writes (single-file output: the chunks and the file, both at once)
    streamed_memory: int  # peak memory of the same run written to a directory (chunk by chunk)
    per_trajectory_memory: int  # the part of the streamed peak that grows with the number of trajectories


# the process itself (JAX, XLA, the model): `lss-jax generate` with the alanine dipeptide model peaks at 0.53 GB
# for 64 x 3000 frames and 1.16 GB for 2000 x 3000 on CPU, where this estimate gives 0.96 and 1.93 GB
_GENERATION_BASELINE = int(0.75 * 2**30)
_PER_TRAJECTORY_STATE = 16  # float32 latent values held per trajectory outside the chunk (start, state, carry, keys)
_CHUNK_COPIES = 4  # a chunk's frames on the device, on the host, in the decoder's work arrays, and the float32 copy


def estimate_generation(n_trajectories: int, n_steps: int, *, latent_dim: int, n_atoms: int, save_every: int = 1,
                        chunk_steps: int | None = None, latent_only: bool = False,
                        single_file: bool = False) -> GenerationSize:
    """Memory and disk a generation needs, from its sizes alone (nothing is allocated).

    A directory output holds one chunk at a time (:func:`default_chunk_steps`: about :data:`CHUNK_BYTES` of
    frames, at least one frame); a single-file output (:func:`export_trajectory`) joins all frames in memory and
    writes them next to the chunks it was made from.

    Example:
        >>> size = estimate_generation(64, 3000, latent_dim=2, n_atoms=10)
        >>> size.disk // 2**20, size.memory < 2 * 2**30
        (23, True)
    """
    out_frame = 4 * (latent_dim + (0 if latent_only else 3 * n_atoms))  # bytes written per saved frame
    held_frame = 4 * (2 * latent_dim + (0 if latent_only else 3 * n_atoms))  # unit-box and latent, coordinates
    n_frames = n_steps // max(save_every, 1)
    chunk_steps = chunk_steps or default_chunk_steps(n_trajectories, n_steps, save_every, held_frame)
    chunk_frames = max(1, min(chunk_steps, n_steps) // max(save_every, 1))
    n_chunks = -(-n_steps // max(chunk_steps, 1))
    per_trajectory = 4 * latent_dim * _PER_TRAJECTORY_STATE + _CHUNK_COPIES * chunk_frames * held_frame
    streamed = _GENERATION_BASELINE + n_trajectories * per_trajectory
    total_out = n_trajectories * n_frames * out_frame
    disk = total_out + n_trajectories * 4 * latent_dim * (n_chunks + 1)  # frames, carries and start points
    if single_file:
        return GenerationSize(streamed + total_out, 2 * disk, streamed, per_trajectory)
    return GenerationSize(streamed, disk, streamed, per_trajectory)


def _size(n: float) -> str:
    """Bytes in the unit that reads best: ``'1.2 GB'``, ``'300 MB'``, ``'1.3e+08 TB'``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}" if n < 1e3 * scale or unit != "TB" else f"{n / scale:.2e} TB"
    return f"{int(n)} bytes"


def check_generation_fits(n_trajectories: int, n_steps: int, out, *, latent_dim: int, n_atoms: int,
                          save_every: int = 1, chunk_steps: int | None = None, latent_only: bool = False,
                          single_file: bool = False, available_memory: float | None = None,
                          free_disk: float | None = None) -> GenerationSize:
    """Refuse, before any work, a generation that would not fit in memory or on the disk of ``out``.

    The ``ValueError`` says what the run would need, what there is, and which option makes it fit (a directory
    output instead of one file, fewer trajectories per run, a smaller ``--chunk-steps``, ``--save-every``,
    ``--latent-only``). Chunks already on disk in ``out`` (a run being continued) count as written.

    Example:
        >>> try:
        ...     check_generation_fits(10**9, 10**9, "g.xtc", latent_dim=2, n_atoms=10, single_file=True,
        ...                           available_memory=64e9, free_disk=1e12)
        ... except ValueError as err:
        ...     print(str(err)[:70])
        generating 1,000,000,000 trajectories x 1,000,000,000 frames into one
    """
    from lss_jax.data.stream import available_memory_bytes

    out = Path(out)
    size = estimate_generation(n_trajectories, n_steps, latent_dim=latent_dim, n_atoms=n_atoms, save_every=save_every,
                               chunk_steps=chunk_steps, latent_only=latent_only, single_file=single_file)
    memory = available_memory_bytes() if available_memory is None else float(available_memory)
    n_frames = n_steps // max(save_every, 1)
    what = (f"generating {n_trajectories:,} trajectories x {n_frames:,} frames "
            f"{'into one file' if single_file else 'into a directory'}")
    if size.memory > memory:
        if single_file and size.streamed_memory <= memory:
            fix = (f"write a directory instead (--out without an extension): it streams chunk by chunk and needs about "
                   f"{_size(size.streamed_memory)}; `lss_jax.load_generated` and `lss-jax report --lss DIR` read it")
        else:
            most = int((memory - _GENERATION_BASELINE) // size.per_trajectory_memory)
            while most >= 1 and estimate_generation(most, n_steps, latent_dim=latent_dim, n_atoms=n_atoms,
                                                    save_every=save_every, latent_only=latent_only).memory > memory:
                most = int(most * 0.9)  # fewer trajectories get longer default chunks
            one_frame = estimate_generation(n_trajectories, n_steps, latent_dim=latent_dim, n_atoms=n_atoms,
                                            save_every=save_every, chunk_steps=save_every, latent_only=latent_only)
            if chunk_steps and one_frame.streamed_memory <= memory:
                fix = f"use a smaller --chunk-steps (e.g. --chunk-steps {save_every}; the output does not depend on it)"
            elif most >= 1:
                fix = (f"generate at most {most:,} trajectories per run (--n-traj {most}; run more with other --seed "
                       "values into other directories, or over several processes with --distributed)")
            else:
                fix = "use a machine with more memory"
            if single_file:
                fix = "write a directory instead (--out without an extension) and " + fix
        raise _io.ResourceLimitError(f"{what} would need about {_size(size.memory)} of memory, more than the {_size(memory)} "
                         f"available; {fix}.")
    parent = next(p for p in (out.absolute(), *out.absolute().parents) if p.is_dir())
    free = shutil.disk_usage(parent).free if free_disk is None else float(free_disk)
    done = 0
    parts = out if not single_file else out.parent / f".{out.name}.parts"
    if parts.is_dir():  # a run being continued: its chunks are already written
        done = sum(f.stat().st_size for f in parts.rglob("*.npy"))
    need = max(size.disk - done, 0)
    if need > free:
        factor = -(-need // max(int(free), 1))
        fixes = [f"keep fewer frames (--save-every {save_every * factor}, a divisor of --n-steps)",
                 f"fewer trajectories (--n-traj {max(1, n_trajectories // factor)})"]
        if not latent_only and n_atoms:
            latent = estimate_generation(n_trajectories, n_steps, latent_dim=latent_dim, n_atoms=n_atoms,
                                         save_every=save_every, chunk_steps=chunk_steps, latent_only=True,
                                         single_file=single_file).disk
            fixes.append(f"only the latent trajectories (--latent-only, {_size(latent)})")
        raise _io.ResourceLimitError(f"{what} would write about {_size(need)}, more than the {_size(free)} free on the disk of "
                         f"{parent}; free space there, write elsewhere, or {', '.join(fixes[:-1])} or {fixes[-1]}.")
    return size


def process_share(n_trajectories: int, process_index: int = 0, process_count: int = 1) -> np.ndarray:
    """Trajectory ids of one process: a contiguous share of ``range(n_trajectories)``.

    Example:
        >>> [process_share(10, p, 3).tolist() for p in range(3)]
        [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in [0, {process_count}), got {process_index}.")
    return np.array_split(np.arange(n_trajectories), process_count)[process_index]


def collect_rollout(chunks, *, total: int, progress: bool = True, desc: str = "rollout", unit: str = "step",
                    per_frame: int = 1) -> np.ndarray:
    """Concatenate the frames of :func:`iter_rollout` along the time axis on the host, with a progress bar
    over ``total`` units (``per_frame`` units per saved frame and trajectory)."""
    from lss_jax.engine.progress import progress_bar

    out = []
    with progress_bar(total=total, desc=desc, unit=unit, unit_scale=True, disable=not progress) as bar:
        for _, _, frames in chunks:
            out.append(np.asarray(frames))
            bar.update(frames.shape[0] * frames.shape[1] * per_frame)
    return np.concatenate(out, axis=1)


def rollout_with_progress(
    key: jax.Array,
    mixture_fn: Callable,
    params,
    x0: jax.Array,
    *,
    n_steps: int,
    save_every: int = 1,
    boundary: str = "reflect",
    n_chunks: int = 20,
    progress: bool = True,
    desc: str = "LSS rollout",
    precision: str = "float32",
    devices: Sequence[jax.Device] | None = None,
) -> np.ndarray:
    """:func:`lss_jax.propagator.rollout` in up to ``n_chunks`` calls with a progress bar, returning a host array.

    Bitwise identical to one :func:`~lss_jax.propagator.rollout` call (step keys are addressed by the
    global step index); chunks are multiples of ``save_every`` and all but possibly the last share one
    compilation.

    Example:
        >>> from flax import nnx
        >>> from lss_jax.propagator import MDN, mdn_apply_fn
        >>> graphdef, params = nnx.split(MDN(1, rngs=nnx.Rngs(0)))
        >>> traj = rollout_with_progress(jax.random.key(1), mdn_apply_fn(graphdef), params, jnp.full((3, 1), 0.5),
        ...                              n_steps=10, n_chunks=1, progress=False)
        >>> type(traj).__name__, traj.shape
        ('ndarray', (3, 10, 1))
    """
    if n_steps < 1 or save_every < 1 or n_steps % save_every:
        raise ValueError(f"n_steps ({n_steps}) must be a positive multiple of save_every ({save_every}).")
    per_chunk = max(1, -(-(n_steps // save_every) // max(1, n_chunks))) * save_every

    def simulate(x, steps, first_step):
        return rollout(key, mixture_fn, params, x, n_steps=steps, save_every=save_every, boundary=boundary,
                       start_step=first_step, precision=precision, devices=devices)

    chunks = iter_rollout(simulate, jnp.asarray(x0), n_steps=n_steps, save_every=save_every, chunk_steps=per_chunk)
    return collect_rollout(chunks, total=n_steps * x0.shape[0], progress=progress, desc=desc, per_frame=save_every)


@functools.wraps(stream.iter_chunks, assigned=("__doc__", "__annotations__"))
def iter_chunks(key, model, u0, **kwargs):
    # stream.iter_chunks (its signature and docstring, which help() shows) for a fitted lss_jax.LSS facade as well
    from lss_jax.model import as_model

    yield from stream.iter_chunks(key, as_model(model), u0, **kwargs)


def _settings(model, key, n_trajectories, n_steps, save_every, chunk_steps, latent_only, precision, ids) -> dict:
    return {
        "n_trajectories": int(n_trajectories),
        "trajectory_ids": [int(ids[0]), int(ids[-1]) + 1],
        "n_steps": int(n_steps),
        "save_every": int(save_every),
        "chunk_steps": int(chunk_steps),
        "latent_only": bool(latent_only),
        "precision": precision,
        "key": np.asarray(jax.random.key_data(key)).ravel().tolist(),
        "model": model.fingerprint(),
    }



def _check_generation_format(manifest_path: Path, manifest: dict) -> None:
    version = manifest.get("format_version")
    if manifest.get("format") != FORMAT_NAME:
        raise ValueError(f"{manifest_path} is not an lss_jax generation record (format {manifest.get('format')!r}).")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{manifest_path} was written by a newer lss_jax (generation format {version!r}; this one reads "
                         f"formats 1 to {FORMAT_VERSION}); upgrade lss_jax to read or continue it.")


def _valid_chunks(out: Path, manifest: dict) -> int:
    """Number of leading chunks whose files all exist and match their checksums."""
    n = 0
    for chunk in manifest.get("chunks", []):
        for name, digest in chunk["files"].items():
            if not (out / name).is_file() or _io.sha256_file(out / name) != digest:
                return n
        n += 1
    return n


def generate_to_directory(
    key: jax.Array,
    model,
    out,
    n_trajectories: int,
    n_steps: int,
    *,
    start=None,
    save_every: int = 1,
    chunk_steps: int | None = None,
    latent_only: bool = False,
    precision: str = "float32",
    devices: Sequence[jax.Device] | None = None,
    process_index: int = 0,
    process_count: int = 1,
    progress: bool = True,
) -> GenerationSummary:
    """Generate into a directory chunk by chunk (format in the module docstring); resumes if interrupted.

    Re-running with the same model and arguments continues after the last complete chunk (and
    returns at once if the run is complete); the result is bitwise that of an uninterrupted run.
    Different settings in an existing directory are an error, never silently mixed.

    Args:
        key: PRNG key.
        model: a fitted :class:`lss_jax.LSSModel` (or :class:`lss_jax.LSS`).
        out: output directory (created; its parent must exist).
        n_trajectories: ``B`` in total (over all processes).
        n_steps: propagator steps per trajectory.
        start: see :func:`start_points`.
        save_every, chunk_steps, precision, devices: see :func:`iter_chunks`.
        process_index, process_count: this process's share of the trajectories (``jax.distributed``:
            ``jax.process_index()``, ``jax.process_count()``); with ``process_count > 1`` the files
            go to ``out/process-PPP/``.
        progress: show a progress bar (frames/s).
    """
    from lss_jax.engine.progress import progress_bar

    start_time = time.perf_counter()
    out = Path(out)
    ids, where = _generation_share(out, n_trajectories, n_steps, process_index, process_count)
    check_generation_fits(len(ids), n_steps, where, latent_dim=model.latent_dim, n_atoms=len(model.atom_indices),
                          save_every=save_every, chunk_steps=chunk_steps, latent_only=latent_only)
    if process_count > 1:
        out.mkdir(exist_ok=True)  # shared by the processes; each one owns its process-PPP/
    with _io.exclusive_output(where, what="generation directory", how_to_fix=(
            "wait for it to finish (the same command then returns at once, or continues a stopped run), or write "
            "to another output path")):
        frame_bytes = 4 * (2 * model.latent_dim + (0 if latent_only else 3 * len(model.atom_indices)))
        chunk_steps = chunk_steps or default_chunk_steps(len(ids), n_steps, save_every, frame_bytes)
        plan = chunk_plan(n_steps, save_every, chunk_steps)
        settings = _settings(model, key, n_trajectories, n_steps, save_every, chunk_steps, latent_only, precision, ids)
        manifest_path = where / "generation.json"
        if manifest_path.is_file():
            manifest, done, u0 = _resume_manifest(where, manifest_path, settings)
        else:
            manifest, u0 = _new_manifest(where, manifest_path, model, settings, lambda: start_points(
                key, model, n_trajectories, start)[ids], n_chunks=len(plan), n_frames=n_steps // save_every)
            done = 0
        n_frames = n_steps // save_every
        resumed = done
        if done < len(plan):
            manifest["complete"] = False
            carry = np.load(where / f"carry-{done - 1:06d}.npy") if done else None
            chunks = iter_chunks(key, model, u0, n_steps=n_steps, save_every=save_every, chunk_steps=chunk_steps,
                                 trajectory_ids=ids, first_chunk=done, carry=carry, decode=not latent_only,
                                 precision=precision, devices=devices)
            with progress_bar(total=len(ids) * n_frames, initial=len(ids) * (plan[done][0] // save_every),
                              desc="LSS generate", unit="frame", unit_scale=True, disable=not progress) as bar:
                for chunk in chunks:
                    _write_chunk(where, manifest_path, manifest, chunk, n_chunks=len(plan))
                    bar.update(chunk.latent.shape[0] * chunk.latent.shape[1])
        return GenerationSummary(where, len(ids), n_frames, len(ids) * n_steps * model.lag_time,
                                 time.perf_counter() - start_time, resumed)


def _generation_share(out: Path, n_trajectories: int, n_steps: int, process_index: int,
                      process_count: int) -> tuple[np.ndarray, Path]:
    """This process's trajectory ids and the directory it writes them to, after the checks of the arguments."""
    if not out.parent.exists():
        raise FileNotFoundError(f"the parent directory of {out} does not exist; create it first.")
    if n_trajectories < 1 or n_steps < 1:
        raise ValueError(f"n_trajectories and n_steps must be >= 1, got {n_trajectories} and {n_steps}.")
    ids = process_share(n_trajectories, process_index, process_count)
    if len(ids) == 0:
        raise ValueError(f"{process_count} processes for {n_trajectories} trajectories leaves process {process_index} "
                         "without work; use fewer processes or more trajectories.")
    return ids, (out / f"process-{process_index:03d}" if process_count > 1 else out)


def _resume_manifest(where: Path, manifest_path: Path, settings: dict) -> tuple[dict, int, np.ndarray]:
    """An existing generation's manifest cut to its verified chunks, their number, and its start points; an error
    if it cannot be continued bit for bit with ``settings``."""
    manifest = json.loads(manifest_path.read_text())
    _check_generation_format(manifest_path, manifest)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{where} was generated by an lss_jax with another random stream (generation format "
            f"{manifest.get('format_version')}, this one writes {FORMAT_VERSION}); its chunks cannot be continued "
            "bit for bit. Generate into a new output path (load_generated still reads the old one).")
    diff = sorted(k for k in settings if manifest["settings"].get(k) != settings[k])
    if diff:
        raise ValueError(
            f"{where} holds a generation with different settings ({', '.join(diff)}); to continue it, rerun "
            "with its settings, or write to a new output path.")
    done = _valid_chunks(where, manifest)
    manifest["chunks"] = manifest["chunks"][:done]
    return manifest, done, np.load(where / "start.npy")


def _new_manifest(where: Path, manifest_path: Path, model, settings: dict, start_fn: Callable[[], np.ndarray], *,
                  n_chunks: int, n_frames: int) -> tuple[dict, np.ndarray]:
    """Start a generation directory: its start points (``start_fn()``, once the directory is known to be new),
    topology and manifest (no chunks yet)."""
    if where.exists() and any(where.iterdir()):
        raise ValueError(f"{where} exists and is not an lss_jax generation directory; choose a new output path.")
    where.mkdir(parents=True, exist_ok=True)
    u0 = start_fn()
    _io.save_npy(where / "start.npy", u0)
    with _io.atomic_path(where / "topology.pdb") as tmp:
        model.reference.save_pdb(str(tmp))
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "settings": settings,
                "lag_time": model.lag_time, "n_chunks": n_chunks, "n_frames": n_frames,
                "complete": False, "chunks": []}
    _io.write_json(manifest_path, manifest)
    return manifest, u0


def _write_chunk(where: Path, manifest_path: Path, manifest: dict, chunk, *, n_chunks: int) -> None:
    """Write one chunk's files, then record them (with their checksums) in the manifest; a full disk is an error
    that says what is kept and how to continue."""
    files = {f"latent-{chunk.index:06d}.npy": chunk.latent, f"carry-{chunk.index:06d}.npy": chunk.carry}
    if chunk.xyz is not None:
        files[f"xyz-{chunk.index:06d}.npy"] = chunk.xyz
    try:
        for name, array in files.items():
            _io.save_npy(where / name, array.astype(np.float32))
        manifest["chunks"].append({"index": chunk.index, "first_frame": chunk.first_frame,
                                   "n_frames": chunk.latent.shape[1],
                                   "files": {name: _io.sha256_file(where / name) for name in files}})
        manifest["complete"] = chunk.index == n_chunks - 1
        _io.write_json(manifest_path, manifest)
    except OSError as err:
        if err.errno not in _DISK_FULL:
            raise
        raise OSError(err.errno, (
            f"the disk is full ({err.strerror}) while writing chunk {chunk.index + 1} of {n_chunks} to "
            f"{where}; the {chunk.index} complete chunk(s) before it are kept and verified. Free space "
            "there (or raise the file size limit), then rerun the same command: it continues, to the "
            "same bytes as an uninterrupted run")) from err


class Generated(NamedTuple):
    """A generation directory opened by :func:`load_generated` (arrays are memory-mapped)."""

    latent: np.ndarray  # [B, n_frames, latent_dim]
    xyz: np.ndarray | None  # [B, n_frames, n_atoms, 3] nm, None for latent-only runs
    topology: object  # mdtraj.Topology of the decoded atoms
    times: np.ndarray  # [n_frames] time of each saved frame since the start (model time unit)

    def trajectory(self, trajectories=None):
        """The decoded frames as one ``mdtraj.Trajectory``, trajectory-major (all of them by default)."""
        import mdtraj as md

        if self.xyz is None:
            raise ValueError("this generation is latent-only: it has no coordinates to make a trajectory of.")
        sel = slice(None) if trajectories is None else trajectories
        xyz = np.asarray(self.xyz[sel])
        return md.Trajectory(xyz.reshape(-1, *xyz.shape[-2:]), self.topology,
                             time=np.tile(self.times, xyz.shape[0]))


def _open_one(where: Path):
    import mdtraj as md

    manifest_path = where / "generation.json"
    holder = _io.lock_holder(where)
    if holder is not None:  # a run is writing it now: its record may be about to change
        raise ValueError(f"{where} is being written by another lss_jax process ({_io._describe(holder)}); wait for "
                         "it to finish, then read it.")
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{where} is not a generation directory (no generation.json).")
    manifest = json.loads(manifest_path.read_text())
    _check_generation_format(manifest_path, manifest)
    if not manifest.get("complete"):
        raise ValueError(f"the generation in {where} is incomplete ({len(manifest['chunks'])} of "
                         f"{manifest['n_chunks']} chunks); rerun the same `lss-jax generate` command to finish it.")
    if _valid_chunks(where, manifest) != manifest["n_chunks"]:
        raise ValueError(f"a chunk file in {where} is missing or does not match its checksum; rerun the same "
                         "`lss-jax generate` command to regenerate it.")
    names = [sorted(c["files"]) for c in manifest["chunks"]]
    latent = np.concatenate([np.load(where / n, mmap_mode="r") for c in names for n in c if n.startswith("latent")], 1)
    xyz_files = [where / n for c in names for n in c if n.startswith("xyz")]
    xyz = np.concatenate([np.load(f, mmap_mode="r") for f in xyz_files], 1) if xyz_files else None
    s = manifest["settings"]
    times = np.arange(1, manifest["n_frames"] + 1) * s["save_every"] * manifest["lag_time"]
    return latent, xyz, md.load_topology(str(where / "topology.pdb")), times


def load_generated(path) -> Generated:
    """Open a directory written by :func:`generate_to_directory` (all processes' shares, in order).

    Chunks are verified against their checksums. The concatenation over chunks is a copy; for
    runs larger than memory, read chunk files one at a time (``np.load(..., mmap_mode="r")``).
    """
    path = Path(path)
    parts = sorted(path.glob("process-*")) if not (path / "generation.json").is_file() else [path]
    if not parts:
        raise FileNotFoundError(f"{path} is not a generation directory (no generation.json).")
    opened = [_open_one(p) for p in parts]
    latent = np.concatenate([o[0] for o in opened]) if len(opened) > 1 else opened[0][0]
    xyz = None if opened[0][1] is None else (np.concatenate([o[1] for o in opened]) if len(opened) > 1 else opened[0][1])
    return Generated(latent, xyz, opened[0][2], opened[0][3])


STREAMED_FORMATS = (".xtc", ".trr", ".dcd", ".h5", ".nc")


def check_output_format(out) -> None:
    """Fail early (before hours of generation) if mdtraj cannot write ``out``'s format here."""
    import mdtraj as md

    suffix = Path(out).suffix
    if suffix == ".npy":
        return
    savers = md.Trajectory(np.zeros((1, 1, 3), np.float32), None)._savers()
    if suffix not in savers:
        raise ValueError(f"mdtraj cannot write {suffix!r} files; use .xtc, .dcd, .trr, .nc, .h5, .pdb or a directory.")
    if suffix == ".h5":
        try:
            import tables  # noqa: F401
        except ImportError as err:
            raise ValueError("writing .h5 needs PyTables (pip install tables); or use .xtc / .dcd.") from err


def export_trajectory(path, out, *, progress: bool = True) -> list[Path]:
    """Write a generation directory as one trajectory file (trajectory-major), its PDB and latent ``.npy``.

    ``out``'s extension picks the format. ``.xtc``, ``.trr``, ``.dcd``, ``.h5`` and ``.nc`` are written
    one trajectory at a time (memory: one trajectory); other formats go through one in-memory
    ``mdtraj.Trajectory``. Files appear atomically: ``out``, ``out``'s stem + ``.pdb`` and
    ``.latent.npy`` (``[B, n_frames, latent_dim]``).
    """
    import mdtraj as md

    from lss_jax.engine.progress import progress_bar

    path, out = Path(path), Path(out)
    gen = load_generated(path)
    stem = out.with_suffix("")
    written = []
    if gen.xyz is not None:
        with _io.atomic_path(out) as tmp:
            if out.suffix in STREAMED_FORMATS:
                with md.open(str(tmp), "w") as f:
                    if out.suffix == ".h5":
                        f.topology = gen.topology
                    for b in progress_bar(iterable=range(gen.xyz.shape[0]), desc="write", unit="traj",
                                          disable=not progress or gen.xyz.shape[0] < 100):
                        xyz = md.utils.in_units_of(np.asarray(gen.xyz[b]), "nanometers", f.distance_unit)
                        if out.suffix == ".dcd":
                            f.write(xyz)
                        else:
                            f.write(xyz, time=gen.times.astype(np.float32))
            else:
                gen.trajectory().save(str(tmp))
        written.append(out)
        if out.suffix != ".pdb":  # a PDB output carries its own topology
            with _io.atomic_path(stem.with_suffix(".pdb")) as tmp:
                md.Trajectory(np.asarray(gen.xyz[0, :1]), gen.topology).save_pdb(str(tmp))
            written.append(stem.with_suffix(".pdb"))
    latent_path = Path(f"{stem}.latent.npy") if gen.xyz is not None or out.suffix != ".npy" else out
    _io.save_npy(latent_path, np.asarray(gen.latent, np.float32))
    written.append(latent_path)
    return written


def remove_generation(path) -> None:
    """Delete a generation directory written by :func:`generate_to_directory` (refuses anything else)."""
    path = Path(path)
    if not ((path / "generation.json").is_file() or any(path.glob("process-*/generation.json"))):
        raise ValueError(f"{path} is not a generation directory; not deleting it.")
    shutil.rmtree(path)
