"""Turning a lead's raw fields into the model's numeric input row."""
