"""Metrics and logs: cross-cutting, below every service and the RPC plumbing, so any floor may
record a count or set up logging without importing the transport."""
