"""Model quality in production: outcome feedback, realized and estimated performance, drift."""
