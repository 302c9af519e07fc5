"""Prefect glue: tasks wrap library calls, flows sequence them and return small summaries."""
