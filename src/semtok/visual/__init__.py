"""Visual output: image grids, plots, sample files with their provenance."""
