"""From inputs to art: walking archives (archives), decoding Unity files (unity) in a crash-proof
worker pool (workers), the unpack stage (unpack), reading any image (images), flatten (flatten) and
face crops (faces). Writes data/extracted, data/flat and data/faces."""
