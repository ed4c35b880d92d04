"""The embedder: CNN, word vectors and semantic heads (model code, no gRPC) and the Embedder service."""
