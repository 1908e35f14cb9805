"""A camera-trap season: ingest (stations, deployments, times), megadetector (boxes),
encounters (animals, cannot-link), flanks (left/right classifier), travel (plausibility),
grouping (unknown animals), run (the resumable season run) and outputs (its files)."""
