"""lss_jax: molecular latent space simulators in JAX.

The folders follow the method, from MD frames to generated frames (docs/architecture.md):

* :mod:`~lss_jax.engine`: one training loop for every network (:mod:`~lss_jax.engine.train`), checkpoints,
  devices, file writing, progress bars;
* the three networks: :mod:`~lss_jax.encoder` (SRV, on :mod:`~lss_jax.encoder.vamp`), :mod:`~lss_jax.propagator`
  (MDN and its ensembles, on :mod:`~lss_jax.propagator.scaling`'s unit box), :mod:`~lss_jax.decoder` (flow
  matching or cWGAN-GP on a coordinate map);
* :mod:`~lss_jax.model`, the fitted simulator: :func:`fit_lss` -> :class:`LSSModel`, configured by
  :class:`LSSConfig` with its :class:`DataConfig`, :class:`EncoderConfig`, :class:`PropagatorConfig` and
  :class:`DecoderConfig`, stored by :mod:`~lss_jax.model.io`, with :class:`LSS` as the notebook facade;
* :mod:`~lss_jax.generation`: one streaming rollout loop, generation at scale into a directory
  (:mod:`~lss_jax.generation.simulate`), the exported simulator (:mod:`~lss_jax.generation.export`);
* :mod:`~lss_jax.systems` (four-well, alanine dipeptide, Trp-cage; the OpenMM runner), :mod:`~lss_jax.data`
  (featurization), :mod:`~lss_jax.analysis`, :mod:`~lss_jax.adaptive`, :mod:`~lss_jax.pipelines` (validations
  end to end), :mod:`~lss_jax.cli`.

The numerical core is exported here; networks are flax NNX modules; everything random takes an
explicit PRNG key first.

References:
    H. Sidky, W. Chen, A. L. Ferguson, "Molecular latent space simulators", Chem. Sci. 11, 9459 (2020).
"""

from lss_jax._version import __version__ as __version__  # (re-exported)
from lss_jax.config import DataConfig, EncoderConfig, LSSConfig, PropagatorConfig
from lss_jax.decoder import (
    ConditionalCritic,
    ConditionalGenerator,
    CriticInfo,
    Decoder,
    DecoderConfig,
    VelocityField,
    fit_decoder,
    flow_matching_loss,
    gradient_penalty,
    wgan_critic_loss,
    wgan_generator_loss,
)
from lss_jax.encoder.vamp import Covariances, covariances, reversible_eigh, vamp_loss, vamp_score
from lss_jax.engine.devices import use_every_core
from lss_jax.engine.train import TrainHistory, fit
from lss_jax.model import LSSModel, fit_lss
from lss_jax.model.facade import LSS
from lss_jax.propagator import (
    MDN,
    MixtureParams,
    gaussian_mixture_log_prob,
    mdn_apply_fn,
    mdn_nll,
    mixture_sample,
    propagate_step,
    rollout,
)
from lss_jax.propagator.scaling import MinMaxScaler, apply_boundary, minmax_fit, minmax_inverse, minmax_transform

__all__ = [
    "ConditionalCritic",
    "ConditionalGenerator",
    "Covariances",
    "CriticInfo",
    "DataConfig",
    "Decoder",
    "DecoderConfig",
    "EncoderConfig",
    "LSS",
    "LSSConfig",
    "LSSModel",
    "MDN",
    "MinMaxScaler",
    "MixtureParams",
    "PropagatorConfig",
    "TrainHistory",
    "VelocityField",
    "apply_boundary",
    "covariances",
    "fit",
    "fit_decoder",
    "fit_lss",
    "flow_matching_loss",
    "gaussian_mixture_log_prob",
    "gradient_penalty",
    "mdn_apply_fn",
    "mdn_nll",
    "minmax_fit",
    "minmax_inverse",
    "minmax_transform",
    "mixture_sample",
    "propagate_step",
    "reversible_eigh",
    "rollout",
    "use_every_core",
    "vamp_loss",
    "vamp_score",
    "wgan_critic_loss",
    "wgan_generator_loss",
]
