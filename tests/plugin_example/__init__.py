"""A complete provider kind written only against provcfg's public surface (type-checked)."""
