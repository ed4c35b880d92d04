"""Python client for the image search services: `ImageSearchClient` and its plain result types."""

from services.client.client import ImageSearchClient, from_settings
from services.client.errors import ClientError
from services.client.types import (
    ImageEmbedding,
    ImageResult,
    IngestItem,
    IngestItemResult,
    IngestSummary,
    PointVectors,
    SearchResult,
    TextEmbedding,
    WordResult,
)

__all__ = [
    "ClientError",
    "ImageEmbedding",
    "ImageResult",
    "ImageSearchClient",
    "IngestItem",
    "IngestItemResult",
    "IngestSummary",
    "PointVectors",
    "SearchResult",
    "TextEmbedding",
    "WordResult",
    "from_settings",
]
