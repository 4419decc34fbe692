"""How likely data are under a diffusion model: the variational bound and the ODE likelihood.

- ``gaussian``: KL between Gaussians, DDPM's discretized Gaussian decoder (Ho et al. 2020, eq. 13).
- ``vlb``: the bound of eq. 5 term by term (all T terms, or an unbiased sampled-t estimate).
- ``ode``: the exact likelihood of the probability-flow ODE (Song et al. 2021, App. D.2), with
  uniform dequantization for discrete data.

Everything reports bits per dimension (nats / (D·ln 2)) unless its name says nats.
"""

from ddpmkit.likelihood.gaussian import (
    discretized_gaussian_log_likelihood,
    gaussian_log_density,
    normal_kl,
)
from ddpmkit.likelihood.ode import (
    ODELikelihood,
    dequantize,
    dequantized_bits_per_dim,
    ode_bits_per_dim,
    ode_log_likelihood,
)
from ddpmkit.likelihood.vlb import (
    ReverseLogVariance,
    VariationalBound,
    prior_kl_bpd,
    sampled_vlb_estimate,
    schedule_log_variance,
    variational_bound,
    vlb_term,
)

__all__ = [
    "ODELikelihood",
    "ReverseLogVariance",
    "VariationalBound",
    "dequantize",
    "dequantized_bits_per_dim",
    "discretized_gaussian_log_likelihood",
    "gaussian_log_density",
    "normal_kl",
    "ode_bits_per_dim",
    "ode_log_likelihood",
    "prior_kl_bpd",
    "sampled_vlb_estimate",
    "schedule_log_variance",
    "variational_bound",
    "vlb_term",
]
