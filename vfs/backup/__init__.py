"""Backups that never propagate damage: generations, fixity checks, repair and restore.

A destination holds `current/` (the originals as plain files, in the library's own layout),
`versions/<generation>/` (what a generation displaced: edited or deleted originals, never thrown away)
and `generations/<generation>/` (MANIFEST.tsv, metadata.json, catalog.db, and DONE, written last).
See docs/backup.md.
"""
