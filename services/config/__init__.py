"""Configuration: the one place that reads the environment."""

from services.config.settings import Settings

__all__ = ["Settings"]
