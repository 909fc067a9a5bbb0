"""The design studio: a local page to browse a trained generator's characters, mix, truncate and
interpolate them, and keep favourites (studio/favourites.json); its engine batches and caches draws."""
