"""HTTP layer: Starlette routes, schemas, auth and metrics over ``engine`` (issue 3)."""
