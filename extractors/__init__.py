"""Corpus adapters and feature extractors: plain functions, media in, arrays out."""
