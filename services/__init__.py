"""Semantic image search: embedder, indexer and query services over gRPC."""
