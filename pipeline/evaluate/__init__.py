"""What a trained model draws: sampling, grids and generation (sampling), SWD (metrics), FID / KID (fid),
the grid-artefact figures (artefacts) and the evaluate stage (stage). Square and tall (1:2) models alike."""
