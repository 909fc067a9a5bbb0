"""The models: shared layers (layers), the StyleGAN and StyleGAN2 networks (networks, networks_v2),
augmentation (augment), losses and regularisers (losses), and turning G's output into image grids
(grids). Pure torch: reads no files, knows nothing of stages."""
