"""Python client for the image search services: `ImageSearchClient` and its plain result types."""

from imgsearch.client.client import ImageSearchClient, from_settings
from imgsearch.client.errors import ClientError
from imgsearch.client.types import (
    Filter,
    ImageEmbedding,
    ImagePage,
    ImageResult,
    IngestSummary,
    PointVectors,
    QueryPart,
    SearchResult,
    StoredImage,
    WordResult,
)
from imgsearch.types.embeddings import TextEmbedding
from imgsearch.types.items import IngestItem, IngestItemResult

__all__ = [
    "ClientError",
    "Filter",
    "ImageEmbedding",
    "ImagePage",
    "ImageResult",
    "ImageSearchClient",
    "IngestItem",
    "IngestItemResult",
    "IngestSummary",
    "PointVectors",
    "QueryPart",
    "SearchResult",
    "StoredImage",
    "TextEmbedding",
    "WordResult",
    "from_settings",
]
