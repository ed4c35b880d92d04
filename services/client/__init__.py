"""Python client for the image search services: `ImageSearchClient` and its plain result types."""

from imgsearch.client.client import ImageSearchClient, from_settings
from imgsearch.client.errors import ClientError
from imgsearch.client.types import (
    ImageEmbedding,
    ImageResult,
    IngestSummary,
    PointVectors,
    SearchResult,
    WordResult,
)
from imgsearch.embedder.results import TextEmbedding
from imgsearch.indexer.items import IngestItem, IngestItemResult

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
