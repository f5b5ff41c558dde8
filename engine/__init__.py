"""ML Service engine: lead features, signed model store, LightGBM inference, pricing.

Nothing in this package knows about HTTP; the CLI, the tests and the API layer all call
``engine.scoring.scorer.Scorer``.
"""

__version__ = "0.1.0"
