"""Prefect flows that run the extractors over a manifest."""
