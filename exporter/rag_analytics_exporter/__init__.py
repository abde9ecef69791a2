"""Prometheus exporter for the daily aggregate tables of a RAG service's analytics pipeline."""

__version__ = "0.1.0"
