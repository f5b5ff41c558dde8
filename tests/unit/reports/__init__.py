"""Tests of engine.reports."""
