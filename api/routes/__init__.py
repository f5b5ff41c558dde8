"""HTTP routes, grouped by concern; each module returns its ``Route`` list."""
