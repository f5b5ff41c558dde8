"""Dynamic pricing of leads from their score and market factors (docs/pricing.md)."""
