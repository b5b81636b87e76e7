"""One XLA host device per CPU core, so that a rollout sharded over devices uses every core.

XLA's CPU backend runs the small matmuls of the propagator on one core per device. With several host
devices, :func:`lss_jax.rollout` (``devices=jax.devices()``) splits the trajectory batch over them and
runs on all cores at once: 1.85x the trajectory-steps/s of one device at B = 1024 on 2 cores
(``benchmarks/perf/peer_pytorch.py``), with the same numbers bit for bit (trajectories are independent and
keyed by their ids). :meth:`lss_jax.LSSModel.decode_unit` (``devices=``) sends its blocks in turn to the host
devices; it makes no LAPACK call, whose batched kernels in jaxlib 0.10.2 deadlock XLA:CPU's intra-op pool when two
host devices run them at once (``lss_jax.decoder.coordinates.kabsch_superpose``; ``benchmarks/perf/decode_hang.py``).
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count"


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def use_every_core(count: int | None = None) -> int:
    """Ask XLA for ``count`` host (CPU) devices (default: one per core) and return how many it has.

    This works only before JAX starts its backends (before the first array is made: call it first
    thing in a notebook); after that, or when ``XLA_FLAGS`` already sets the host device count, the
    existing count stays and is returned. The process environment is left as it was, so subprocesses
    are not affected. Accelerators are not changed: on a GPU machine ``jax.local_devices()`` are
    still the GPUs. ``lss-jax generate --host-devices N`` calls it.

    Example:
        >>> import jax, lss_jax
        >>> n = lss_jax.use_every_core()

        (The next line is not run as a doctest: starting the backend here would leave the rest of the test process
        with one host device per core.)

        >>> rollout_devices = jax.devices()  # pass as rollout(..., devices=rollout_devices)  # doctest: +SKIP
        >>> n >= 1
        True
    """
    import jax

    if count is not None and count < 1:
        raise ValueError(f"count must be a positive number of host devices, got {count}.")
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={count or cpu_cores()}".strip()
        try:
            jax.devices("cpu")  # starts the backends now, with the flag
        finally:
            if flags:
                os.environ["XLA_FLAGS"] = flags
            else:
                del os.environ["XLA_FLAGS"]
    return len(jax.devices("cpu"))
