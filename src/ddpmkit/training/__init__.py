"""Training: losses and timestep samplers, EMA, data order, and the resumable loop."""
