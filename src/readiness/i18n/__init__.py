"""Message catalogs of the reports, one TOML file per language."""
