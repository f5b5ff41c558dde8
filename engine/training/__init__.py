"""Model training: reading CSVs, fitting encoders and LightGBM, synthetic data."""
