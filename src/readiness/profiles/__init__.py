"""The shipped requirement lists (profiles), TOML."""
