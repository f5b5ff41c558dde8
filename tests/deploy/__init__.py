"""Tests of the deployment files under deploy/ (Prometheus rules and configuration)."""
