"""The package version, in a module of its own so that every layer can read it (``lss_jax.__version__``)."""

__version__ = "0.1.0"
