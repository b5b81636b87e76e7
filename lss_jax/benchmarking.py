"""What the scripts in ``benchmarks/`` share: their command line, the facts of the machine, the results file.

A benchmark measures on one machine and says which: :func:`machine_facts` (backend, devices, cores, memory,
package versions, load average) goes into every results file, which :func:`write_results` writes atomically
(a reader sees the previous file or the new one, never half of one), so a long run that saves after every
step never leaves a broken file behind. :func:`benchmark_parser` is the command line they share (the script's
docstring as ``--help``, ``--quick``, ``--out``), :func:`decode_rate` the decoding throughput the accuracy studies
record beside their fidelity figures, and :func:`throughput_model` the briefly trained alanine
dipeptide simulator of the speed benchmarks (``benchmarks/perf/md_vs_lss.py``, ``benchmarks/perf/generation.py``).

Example:
    >>> import json, tempfile
    >>> parser = benchmark_parser("Time something.", quick="small sizes", out="JSON path")
    >>> args = parser.parse_args(["--quick"])
    >>> args.quick, args.out
    (True, None)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = write_results(Path(d) / "new" / "x-cpu.json", {"benchmark": "x", "machine": machine_facts()})
    ...     saved = json.loads(path.read_text())
    >>> saved["machine"]["backend"], saved["machine"]["lss_jax"] == __version__
    ('cpu', True)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from lss_jax._version import __version__
from lss_jax.engine import io as _io

__all__ = ["ar1_noise", "benchmark_parser", "decode_rate", "fit_or_load", "load_average", "machine_facts", "throughput_model",
           "trp_cage_native_contact_model", "write_results"]


def benchmark_parser(doc: str, *, quick: str | None = None, out: str | None = None) -> argparse.ArgumentParser:
    """The command line of a benchmark script: its docstring as the ``--help`` text, as written.

    Args:
        doc: the script's module docstring (``__doc__``), shown by ``--help`` with its line breaks kept.
        quick: help text of a ``--quick`` flag (smaller settings, a smoke run); no flag when ``None``.
        out: help text of an ``--out`` path (``args.out``: a :class:`~pathlib.Path`, ``None`` when not
            given, so the script chooses its default); no option when ``None``.

    Example:
        >>> parser = benchmark_parser("Time the rollout.", out="JSON path")
        >>> parser.parse_args(["--out", "/tmp/r.json"]).out
        PosixPath('/tmp/r.json')
        >>> hasattr(parser.parse_args([]), "quick")
        False
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if quick is not None:
        parser.add_argument("--quick", action="store_true", help=quick)
    if out is not None:
        parser.add_argument("--out", type=Path, default=None, help=out)
    return parser


def ar1_noise(innovations, rho: float):
    """Noise ``[B, L, D]`` that is an AR(1) process of coefficient ``rho`` along axis 1, ``z_t = rho z_(t-1) +
    sqrt(1 - rho^2) e_t`` from standard normal innovations ``e [B, L, D]``: standard normal at every ``t`` (decoder
    noise with memory along a trajectory, for the Trp-cage noise-memory studies).

    Example:
        >>> import numpy as np
        >>> e = np.random.default_rng(0).normal(size=(2000, 3, 1))
        >>> z = ar1_noise(e, 0.5)
        >>> bool(np.all(z[:, 0] == e[:, 0])), round(float(np.corrcoef(z[:, 1, 0], z[:, 2, 0])[0, 1]), 1)
        (True, 0.5)
    """
    import numpy as np

    z = np.array(innovations, copy=True)
    for t in range(1, z.shape[1]):
        z[:, t] = rho * z[:, t - 1] + np.sqrt(1 - rho ** 2) * z[:, t]
    return z


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages of this machine (a busy machine slows a timing down).

    Example:
        >>> len(load_average())
        3
    """
    return list(os.getloadavg())


def machine_facts(*, load_average_start: Sequence[float] | None = None, packages: Sequence[str] = ()) -> dict:
    """Where a benchmark ran: the ``machine`` entry of its results file.

    Args:
        load_average_start: :func:`load_average` taken before the measurement (recorded beside the one
            taken now, at the end).
        packages: further packages whose ``__version__`` to record (``"torch"``, ``"openmm"``); the
            script has imported them already.

    Returns:
        dict: ``backend``, ``devices`` (JAX's), ``cpu_count``, ``memory_gb`` (physical memory; ``None`` where
        unknown), ``platform``, ``python``, the versions of ``jax``, ``flax``, ``numpy``, ``lss_jax`` and of
        ``packages``, ``load_average_start`` (when given) and ``load_average_end``.

    Example:
        >>> facts = machine_facts(load_average_start=load_average(), packages=["numpy"])
        >>> facts["cpu_count"] == os.cpu_count(), len(facts["load_average_end"])
        (True, 3)
    """
    import flax
    import jax
    import numpy as np

    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):  # not a POSIX system that reports it
        memory_gb = None
    facts = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()], "cpu_count": os.cpu_count(),
             "memory_gb": memory_gb, "platform": platform.platform(), "python": sys.version.split()[0],
             "jax": jax.__version__, "flax": flax.__version__, "numpy": np.__version__, "lss_jax": __version__}
    for name in packages:
        facts[name] = importlib.import_module(name).__version__
    if load_average_start is not None:
        facts["load_average_start"] = list(load_average_start)
    facts["load_average_end"] = load_average()
    return facts


def write_results(path: str | os.PathLike, result: dict) -> Path:
    """Write a benchmark's results as indented JSON at ``path``, atomically, and say so on stderr.

    The folder is created when missing. Scripts that run for hours call it after every step they finish, so
    an interrupted run keeps what it measured.

    Returns:
        Path: ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _io.write_json(path, result)
    print(f"wrote {path}", file=sys.stderr, flush=True)
    return path


def decode_rate(model, unit, *, repeats: int = 1) -> float:
    """Frames per second of ``model.decode_unit`` on the unit-box latent points ``unit [N, m]``: the best of
    ``repeats`` timed calls, after a compiling call on the first 4096 points.

    Example:
        >>> import numpy as np
        >>> class Copy:  # anything with LSSModel.decode_unit's signature
        ...     def decode_unit(self, key, u, progress=None):
        ...         return np.repeat(u[:, None, :], 3, axis=1)
        >>> decode_rate(Copy(), np.zeros((8192, 3)), repeats=2) > 0
        True
    """
    import time

    import jax

    model.decode_unit(jax.random.key(0), unit[:4096], progress=False)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.decode_unit(jax.random.key(0), unit, progress=False)
        best = min(best, time.perf_counter() - start)
    return len(unit) / best


def refit_decoder(model, traj, *, seed: int | None = None, progress: bool = True, **changes):
    """A decoder with the model's settings and ``changes`` (:class:`lss_jax.config.DecoderConfig` fields), trained
    from scratch on the model's decoded atoms of ``traj`` (its training MD, an ``mdtraj.Trajectory``) and their unit
    latent points, from the key ``fit_lss`` gives its decoder (that of ``seed`` if given): with no changes, the model's
    own decoder bit for bit. Studies use it to put another decoder on the same encoder and propagator."""
    import jax

    from lss_jax.data.checks import check_atom_selection
    from lss_jax.decoder import fit_decoder

    atoms = traj.atom_slice(check_atom_selection(traj.topology, model.config.data.atom_selection))
    u = [model.to_unit(p) for p in model.encode([traj])]
    config = model.config.decoder.replace(**changes)
    key = jax.random.split(jax.random.key(model.config.seed if seed is None else seed), 3)[2]
    decoder, _ = fit_decoder(key, [atoms.xyz], u, topology=atoms.topology, reference=atoms.xyz[0],
                             config=config, val_fraction=model.config.data.val_fraction, progress=progress)
    return decoder


def throughput_model(*, quick: bool = False, model_dir: str | os.PathLike | None = None):
    """A briefly trained alanine dipeptide LSS for the speed benchmarks, and how it was made.

    Throughput does not depend on how well a model is trained, so the training is short:
    ``LSS(lag=5, encoder={"latent_dim": 2, "epochs": 2}, propagator={"epochs": 2}, decoder={"iterations": 200})`` on the shipped
    ``train`` trajectory (2 ps frames: one LSS step is 10 ps); with ``quick``, lag 1 on every fifth frame,
    one epoch each and 20 decoder iterations. The generated dynamics are not meant to be accurate.

    Args:
        quick: the smaller model.
        model_dir: load the model saved there if there is one (fitted with this configuration, else an error);
            else train it and save it there (:func:`fit_or_load`).

    Returns:
        tuple: ``(model, info)``: the :class:`~lss_jax.LSS` and a dict of how it was made (``config``,
        ``train_stride``, ``train_frames``, ``fit_seconds``, ``fit_wall_seconds``, ``saved_to``), or
        ``{"loaded_from": ...}`` for a loaded one.

    Example:
        (Not run as a doctest: even the quick model trains for about 20 s.)

        >>> model, info = throughput_model(quick=True)  # doctest: +SKIP
        >>> info["config"]["lag"], model.lag_time  # doctest: +SKIP
        (1, 10.0)
    """
    import time

    from lss_jax.datasets import load_alanine_dipeptide
    from lss_jax.model.facade import LSS

    stride = 5 if quick else 1
    config = {"lag": 1 if quick else 5, "encoder": {"latent_dim": 2, "epochs": 1 if quick else 2},
              "propagator": {"epochs": 1 if quick else 2}, "decoder": {"iterations": 20 if quick else 200}}
    traj = load_alanine_dipeptide("train", stride=stride)
    loaded = model_dir is not None and Path(model_dir).exists()
    start = time.perf_counter()
    lss_config = LSS(**config).config
    model = LSS.from_model(fit_or_load(lss_config.seed, [traj], lss_config, model_dir, progress=False))
    if loaded:
        return model, {"loaded_from": str(model_dir)}
    info = {"config": config, "train_stride": stride, "train_frames": traj.n_frames,
            "fit_seconds": time.perf_counter() - start, "fit_wall_seconds": model.info.get("wall_seconds")}
    return model, {**info, **({"saved_to": str(model_dir)} if model_dir is not None else {})}


def fit_or_load(seed: int, data: list, config, model_dir: str | os.PathLike | None = None, *, progress: bool = True):
    """``fit_lss(jax.random.key(seed), data, config)``, or the model saved in ``model_dir`` when it was fitted with
    ``config`` (the fitted model is saved there otherwise), so studies of one expensive model share its training.

    Raises:
        ValueError: the model in ``model_dir`` was fitted with another configuration.
    """
    import jax

    from lss_jax.model import fit_lss
    from lss_jax.model.io import load_model

    model_dir = None if model_dir is None else Path(model_dir)
    if model_dir is not None and model_dir.exists():
        model = load_model(model_dir)
        if model.config != config:
            raise ValueError(f"the model saved in {model_dir} was fitted with another configuration than the one asked "
                             f"for ({'; '.join(_differences(model.config, config))}): pass a new directory to fit "
                             "one with it, or delete that one to refit it.")
        return model
    model = fit_lss(jax.random.key(seed), data, config, progress=progress)
    if model_dir is not None:
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        model.save(model_dir)
    return model


def _differences(saved, asked, prefix: str = "") -> list[str]:
    """The fields in which two configurations differ, as ``"decoder.epochs = 300 (asked for 150)"``."""
    if dataclasses.is_dataclass(saved) and type(saved) is type(asked):
        return [d for f in dataclasses.fields(saved)
                for d in _differences(getattr(saved, f.name), getattr(asked, f.name), f"{prefix}{f.name}.")]
    return [] if saved == asked else [f"{prefix[:-1]} = {saved!r} (asked for {asked!r})"]


def trp_cage_native_contact_model(seed: int = 0, *, model_dir: str | os.PathLike | None = None,
                                  epochs: int | None = None, condition_dropout: float = 0.0):
    """The Trp-cage protocol (``trp_cage.lss_config(seed=seed)``: the chain decoder on native contact maps) with
    ``redraws = 0`` (every frame a first draw), the chain decoder's own temperature (0.7, not the protocol's 0.75; the
    studies set theirs at sampling) and, unless ``epochs`` is given, its own 50 epochs (not the protocol's 300),
    trained on the shipped training run; the model the generative protein decoder's studies measure (~7 min on two
    CPU cores at 50 epochs).

    Args:
        seed: the protocol's seed.
        model_dir: load the model saved there if there is one (fitted with this configuration, ``epochs`` included,
            else an error); else train it and save it there (:func:`fit_or_load`).
        epochs: the chain decoder's training epochs (default: the kind's own, 50; the decoder's steps scale with it,
            the encoder and propagator are the same networks whatever it is).
        condition_dropout: the chain field's condition dropout (0: none; > 0 to sample it with classifier-free
            guidance, ``decoder.guidance``).
    """
    from lss_jax.systems import trp_cage as tc

    fields = {"redraws": 0, "epochs": epochs, "temperature": None,  # None: the kind's own (50 epochs, T = 0.7)
              **({"condition_dropout": condition_dropout} if condition_dropout else {})}
    return fit_or_load(seed, [tc.load_trp_cage("train")], tc.lss_config(seed=seed, decoder=fields), model_dir)
