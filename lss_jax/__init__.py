"""lss_jax: molecular latent space simulators in JAX.

The pure numerical core is exported here; networks are flax NNX modules; everything random takes an
explicit PRNG key first.

References:
    H. Sidky, W. Chen, A. L. Ferguson, "Molecular latent space simulators", Chem. Sci. 11, 9459 (2020).
"""

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
from lss_jax.lss import LSS, LSSConfig
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
from lss_jax.scaling import MinMaxScaler, apply_boundary, minmax_fit, minmax_inverse, minmax_transform
from lss_jax.train import TrainHistory, fit
from lss_jax.vamp import Covariances, covariances, reversible_eigh, vamp_loss, vamp_score

__version__ = "0.1.0"

__all__ = [
    "ConditionalCritic",
    "ConditionalGenerator",
    "Covariances",
    "CriticInfo",
    "Decoder",
    "DecoderConfig",
    "LSS",
    "LSSConfig",
    "MDN",
    "MinMaxScaler",
    "MixtureParams",
    "TrainHistory",
    "VelocityField",
    "apply_boundary",
    "covariances",
    "fit",
    "fit_decoder",
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
    "vamp_loss",
    "vamp_score",
    "wgan_critic_loss",
    "wgan_generator_loss",
]
