"""Model inference: low-overhead prediction over LightGBM's C API."""
