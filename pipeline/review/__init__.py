"""Which images are trained on: the manifest with automatic rejections and human decisions
(manifest), the review stage that writes data/review and data/dataset (stage), and the review page:
its store of decisions (store), its undo history (history), its HTTP server (server) and its static
files (static/)."""
