"""Python stubs generated from protos/ by `python -m services.protogen.build` (never edited by hand)."""
