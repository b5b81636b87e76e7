"""The engine under every network: one training loop (:mod:`~lss_jax.engine.train`), its checkpoints
(:mod:`~lss_jax.engine.checkpoint`), the devices (:mod:`~lss_jax.engine.devices`), atomic and locked file writing
(:mod:`~lss_jax.engine.io`) and progress bars (:mod:`~lss_jax.engine.progress`). Nothing here knows a network or a
model (docs/architecture.md, "Layers")."""
