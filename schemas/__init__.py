"""JSON Schemas shipped with scipzarr (config, store metadata, feature table)."""
