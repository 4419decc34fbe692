"""Configuration: the dataclasses (``schema``), strict reading of files and flags (``parsing``),
presets, and the builders that turn a config into schedules, networks and losses."""
