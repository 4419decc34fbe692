"""The mathematics every other layer builds on: the noise schedule and its tables, the forward
process, parameterization conversions, the denoiser interface, time grids, x̂_0 thresholding,
explicit randomness and exact denoisers of Gaussian data. Imports nothing else from ddpmkit."""
