"""A bench-only Django project: paydesk plus a baseline app, on PostgreSQL (see settings)."""
