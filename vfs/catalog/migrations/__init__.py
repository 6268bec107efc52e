"""photovfs."""
