"""Load tests of the running service: a locust traffic mix, a runner with thresholds, a soak.

- ``locustfile.py``: the mix (four verticals, single and batch scoring, invalid leads,
  outcome feedback, admin reloads); the only module that imports locust.
- ``run.py``: runs the mix headless against a service (given, or started locally) and
  judges it (``thresholds.py``); ``soak.py``: minutes of it with reloads and worker kills,
  and the memory and file descriptors of every process at start and end.

Locust monkey-patches the standard library with gevent when it is imported, so it only
ever runs in its own process (``locust_process.py`` spawns ``python -m locust``); every
other module here is safe to import from pytest or the service's own code.
How to run them and what they check: docs/loadtests.md.
"""
