"""Tests of engine.monitoring."""
