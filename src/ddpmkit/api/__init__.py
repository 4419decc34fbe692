"""The Python API: load, sample, restore, measure, export and train, the calls the commands make."""
