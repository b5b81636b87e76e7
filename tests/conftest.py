import contextlib
import os

import jax
import pytest

os.environ.setdefault("LSS_JAX_NO_PROGRESS", "1")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)


class CompileCounter:
    """Counts XLA backend compilations while active (jax.monitoring events)."""

    def __init__(self):
        self.count = 0
        self.active = False

    def __call__(self, name, duration, **kwargs):
        if self.active and name == "/jax/core/compile/backend_compile_duration":
            self.count += 1

    @contextlib.contextmanager
    def watch(self):
        self.count, self.active = 0, True
        try:
            yield self
        finally:
            self.active = False


_COUNTER = CompileCounter()
jax.monitoring.register_event_duration_secs_listener(_COUNTER)


@pytest.fixture
def compile_counter():
    return _COUNTER
