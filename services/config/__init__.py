"""Configuration: the one place that reads the environment."""

from imgsearch.config.settings import Settings

__all__ = ["Settings"]
