"""The composition root: builds the services a process runs (`serve`) and starts `serve` as a child
process (`process`, for the demo, benchmarks and tests). Nothing below this package imports it."""
