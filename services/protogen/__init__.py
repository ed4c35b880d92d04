"""Python stubs generated from protos/ by `python -m imgsearch.protogen.build` (never edited by hand)."""
