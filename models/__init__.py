"""The shipped checkpoints. Installed as the package `reid_models` (pyproject.toml maps this folder)
so that a non-editable install finds them: reid.models_dir."""
