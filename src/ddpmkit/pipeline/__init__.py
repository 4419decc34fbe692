"""A trained model end to end: checkpoint folders, ``load_model``, batched generation with
per-sample seeds, classifier folders and image restoration tasks."""
