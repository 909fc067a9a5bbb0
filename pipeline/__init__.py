"""Mobile-game APKs -> clean anime character art -> a StyleGAN generator, as one DVC pipeline.

Stages (in stages/) are thin doors into this package; everything worth testing lives here, in one
subpackage per part of the data flow. LAYERS is that flow, in order: a subpackage imports only those
before it in the list (tests/test_layout.py checks every import), and nothing here imports `stages`.
"""

LAYERS = (
    "core",      # params, atomic files, errors, the stage runner, colours, kill points: what every stage needs
    "extract",   # data/raw -> data/extracted -> data/flat -> data/faces: archives, Unity, workers, images
    "review",    # the manifest, decisions, reviewed data sets, and the review page
    "gan",       # the StyleGAN and StyleGAN2 networks, their layers, augmentation, losses, image grids
    "train",     # train@R: the trainer, schedule, packed data, checkpoints, live log
    "evaluate",  # grids and metrics of a trained model, and drawing characters from it
    "studio",    # the design page: a trained generator explored in the browser, and favourites
    "sample",    # the built-in sample APK: builder and bundle editing
    "bench",     # speed and quality benchmarks of all of the above
)
