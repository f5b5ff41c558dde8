"""Scoring: loaded model versions, confidence, and the one call the API makes per lead."""
