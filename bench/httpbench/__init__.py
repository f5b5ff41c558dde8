"""The HTTP benchmark's parts; ``bench/bench_http.py`` is the entry point."""
