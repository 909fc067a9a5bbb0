"""Mobile-game APKs -> clean anime character art -> a StyleGAN generator, as one DVC pipeline.

Stages (in stages/) are thin doors into this package; everything worth testing lives here.
"""
