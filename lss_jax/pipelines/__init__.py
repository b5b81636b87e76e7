"""End-to-end pipelines behind the command line."""
