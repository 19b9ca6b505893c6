"""JSON Schemas of the documents readiness writes."""
