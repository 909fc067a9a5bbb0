"""What a trained model draws: sampling, grids and generation (sampling), SWD / FID / KID (metrics)
and the evaluate stage (stage)."""
