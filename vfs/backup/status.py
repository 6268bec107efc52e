"""The backup part of `photovfs status`: per destination, how old its newest verified generation
is and what the last replica check found. Read from the state folder only (a destination may be
offline: status must still answer at once)."""

from __future__ import annotations

from ..config import Config
from .replicas import CHECK_FILE, generation_age_hours


def backup_status(cfg: Config) -> list[dict]:
    """One entry per destination the library was backed up to (or whose replicas were checked)."""
    from .engine import DESTS_FILE, _load_json

    checks: dict = _load_json(cfg.state_dir / CHECK_FILE, {})
    out = []
    for d in _load_json(cfg.state_dir / DESTS_FILE, []):
        gen = d.get("last_generation")
        out.append({"dest": d["dest"], "last_verified_generation": gen,
                    "age_hours": generation_age_hours(gen), "last_check": checks.get(d["dest"])})
    known = {o["dest"] for o in out}
    out += [{"dest": url, "last_verified_generation": None, "age_hours": None, "last_check": c}
            for url, c in sorted(checks.items()) if url not in known]
    return out


def print_backup_status(items: list[dict]) -> None:
    """Human lines for `photovfs status` (after the inbox and background parts)."""
    if not items:
        print("backup generations: none yet (photovfs backup LIBRARY DEST)")
        return
    print("backup generations:")
    for it in items:
        age = f"{it['age_hours']} h old" if it["age_hours"] is not None else "none verified"
        line = f"  {it['dest']}: newest verified generation {it['last_verified_generation'] or '-'}"
        line += f" ({age})"
        c = it["last_check"]
        if c is None:
            line += "; replicas never checked (photovfs check LIBRARY --replicas)"
        else:
            line += f"; last replica check {c.get('checked_at')}: {c.get('findings_total', 0)} " \
                    f"findings, {c.get('downloaded', 0)} files downloaded"
        print(line)
        for f in (c or {}).get("findings", [])[:10]:
            print(f"    {f['kind']:<18} {f['path']}: {f['detail']}")
