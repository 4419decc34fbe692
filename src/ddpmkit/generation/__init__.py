"""Drawing samples from a model: what each sample is conditioned on, the sampling denoiser
(guidance and clipping stacked once), and batched generation with per-sample seeds."""
