"""The model store: signed, versioned, immutable model directories and their pointer."""
