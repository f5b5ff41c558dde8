"""Command-line interface: ``ml-service``."""
