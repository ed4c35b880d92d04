"""Speed and quality measurements, outside the test suite: see benchmarks/README.md."""
