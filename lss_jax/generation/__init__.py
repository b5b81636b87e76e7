"""Generation: the streaming core that ``LSSModel.generate`` runs on (:mod:`~lss_jax.generation.stream`), generation
at scale into a resumable directory (:mod:`~lss_jax.generation.simulate`, the public home of the streaming names),
and the trained simulator exported as StableHLO (:mod:`~lss_jax.generation.export`).

This ``__init__`` imports nothing: the streaming core sits below :mod:`lss_jax.model` (docs/architecture.md, "Layers")."""
