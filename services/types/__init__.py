"""Plain types that mirror the protos, one definition each, shared by the servers and the Python
client: what goes into an ingest and comes back per image, a query's weighted parts, precomputed
vectors, a text's embedding and the model's description. Floor 1: imports only errors and the
generated stubs, so the client-only install reads them without any server package."""
