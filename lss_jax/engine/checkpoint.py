"""Training checkpoints in a small documented format, written atomically and checksummed.

A checkpoint named ``NAME`` in a directory is two files:

* ``NAME.<step>.npz``: the leaves of the training-state pytree as ``arr_0 ... arr_{n-1}`` (``np.savez``;
  PRNG keys are stored as their raw key data). The tree structure is not stored: it is that of the
  freshly initialized state of the same training run, which :meth:`Checkpointer.load` is given.
* ``NAME.json``: ``{"format": "lss_jax.engine.checkpoint", "format_version": 1, "step", "done", "file",
  "fingerprint", "sha256", "leaves": [[shape, dtype], ...], "extra": {...}}``. ``file`` names the
  ``.npz`` (``NAME.npz`` when absent, as written before) and ``sha256`` is its checksum; ``fingerprint`` names the settings and data of the run (a checkpoint of another run is
  refused); ``extra`` holds the loop's scalars (epoch, history, early-stopping counters).

Both files go to a temporary name and are renamed. The arrays of a new step go to a new file, the JSON
that points to it is written last, and only then is the previous step's file deleted: a process killed at
any instant leaves a JSON that names a complete file with its checksum (the previous step or the new
one), and a checkpoint whose ``.npz`` does not match its checksum is never loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lss_jax.engine import io as _io

__all__ = ["Checkpointer", "CheckpointError", "fingerprint"]

FORMAT_NAME = "lss_jax.engine.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is corrupted, incomplete, or belongs to another run."""


def fingerprint(*parts) -> str:
    """SHA-256 of arrays and JSON-able settings, to tell training runs apart.

    Example:
        >>> fingerprint({"lr": 1e-3}, np.zeros(3)) == fingerprint({"lr": 1e-3}, np.zeros(3))
        True
        >>> fingerprint({"lr": 1e-3}) == fingerprint({"lr": 2e-3})
        False
    """
    h = hashlib.sha256()
    for part in parts:
        for leaf in jax.tree_util.tree_leaves(part):
            if isinstance(leaf, (np.ndarray, jax.Array)):
                a = np.ascontiguousarray(np.asarray(leaf))
                h.update(f"{a.shape}{a.dtype}".encode())
                h.update(a.tobytes())
            else:
                h.update(json.dumps(leaf, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)



class Checkpointer:
    """Save and restore one training loop's state every ``every`` steps (epochs or iteration blocks).

    Args:
        directory: where the checkpoint files go (created).
        name: file stem, e.g. ``"propagator"``.
        every: save every this many steps (the final state is always saved).
        resume: load an existing checkpoint (``False``: an existing one is an error, so that a new run
            never silently continues or overwrites an old one).

    Example:
        >>> import tempfile
        >>> state = {"w": jnp.arange(3.0), "key": jax.random.key(0)}
        >>> with tempfile.TemporaryDirectory() as d:
        ...     ckpt = Checkpointer(d, "demo", resume=True)
        ...     ckpt.save(state, step=4, fingerprint="run-1", extra={"loss": [0.5]})
        ...     restored, meta = ckpt.load(state, fingerprint="run-1")
        >>> restored["w"].tolist(), meta["step"], meta["extra"]["loss"]
        ([0.0, 1.0, 2.0], 4, [0.5])
    """

    def __init__(self, directory, name: str, *, every: int = 1, resume: bool = True):
        if every < 1:
            raise ValueError(f"checkpoint interval must be >= 1, got {every}.")
        self.directory, self.name, self.every, self.resume = Path(directory), name, every, resume

    @property
    def meta_path(self) -> Path:
        return self.directory / f"{self.name}.json"

    def due(self, step: int) -> bool:
        return (step + 1) % self.every == 0

    def save(self, state, *, step: int, fingerprint: str, done: bool = False, extra: dict | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        leaves = [np.asarray(jax.random.key_data(x)) if _is_key(x) else np.asarray(x)
                  for x in jax.tree_util.tree_leaves(state)]
        npz = self.directory / f"{self.name}.{int(step)}.npz"
        with _io.atomic_path(npz) as tmp, open(tmp, "wb") as f:
            np.savez(f, *leaves)
        _io.write_json(self.meta_path, {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "step": int(step), "done": bool(done),
            "file": npz.name, "fingerprint": fingerprint, "sha256": _io.sha256_file(npz),
            "leaves": [[list(a.shape), str(a.dtype)] for a in leaves], "extra": extra or {},
        })
        for old in [self.directory / f"{self.name}.npz", *self.directory.glob(f"{self.name}.*.npz")]:
            if old != npz:  # only now that the JSON names the new file
                old.unlink(missing_ok=True)

    def load(self, template, *, fingerprint: str) -> tuple[Any, dict] | None:
        """``(state, meta)`` from the checkpoint, shaped like ``template``; ``None`` if there is none."""
        meta_path = self.meta_path
        if not meta_path.is_file():
            return None
        if not self.resume:
            raise CheckpointError(f"a checkpoint of an earlier run exists in {self.directory}; resume it (--resume) "
                                  "or delete the directory to start over.")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{meta_path} is not valid JSON; delete {self.directory} to start over.") from err
        if meta.get("format") != FORMAT_NAME or meta.get("format_version", 0) > FORMAT_VERSION:
            raise CheckpointError(f"{meta_path} is not a checkpoint this lss_jax can read; delete it to start over.")
        npz = self.directory / Path(str(meta.get("file", f"{self.name}.npz"))).name
        if meta.get("fingerprint") != fingerprint:
            raise CheckpointError(f"the checkpoint {meta_path} was written by a run with other settings or data; "
                                  f"resume with the original ones, or delete {self.directory} to start over.")
        if not npz.is_file() or _io.sha256_file(npz) != meta["sha256"]:
            raise CheckpointError(f"{npz} is missing or does not match its checksum; delete {self.directory} "
                                  "to start over.")
        template_leaves, treedef = jax.tree_util.tree_flatten(template)
        with np.load(npz) as data:
            stored = [data[f"arr_{i}"] for i in range(len(data.files))]
        if len(stored) != len(template_leaves):
            raise CheckpointError(f"{npz} holds {len(stored)} arrays, the run expects {len(template_leaves)}.")
        leaves = []
        for t, s in zip(template_leaves, stored):
            if _is_key(t):
                leaves.append(jax.random.wrap_key_data(s, impl=jax.random.key_impl(t)))
                continue
            if np.shape(t) != s.shape:
                raise CheckpointError(f"{npz} has an array of shape {s.shape} where the run expects {np.shape(t)}.")
            leaves.append(jnp.asarray(s, dtype=np.asarray(t).dtype) if isinstance(t, jax.Array) else s)
        return jax.tree_util.tree_unflatten(treedef, leaves), meta
