"""`photovfs samba-config LIBRARY MOUNTPOINT`: a Samba share section re-exporting a FUSE mount.

Samba serves the FUSE mount like any folder; the rules stay in the core: inbox/ and by-album/ accept
files, edits of existing photos are accepted, the computed views answer "access denied" (EACCES).
So the share itself is read-write and nothing is duplicated in smb.conf.

macOS: `catia fruit streams_xattr`. The FUSE adapter stores `user.*` extended attributes (by virtual
path, in STATE/fuse-xattrs.db), so Finder metadata (`fruit:metadata = stream`) and DOS attributes work;
resource forks stay AppleDouble `._*` files (`fruit:resource = file`), which the core keeps in its
scratch area, never among the photos.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def share_section(library: Path, mountpoint: Path, *, name: str = "photos",
                  user: str | None = None, guest: bool = False,
                  read_only: bool = False) -> str:
    user = user or pwd.getpwuid(os.getuid()).pw_name
    lines = [
        f"[{name}]",
        f"   comment = photovfs library {library}",
        f"   path = {mountpoint}",
        "   browseable = yes",
        f"   read only = {'yes' if read_only else 'no'}",
        "   # the FUSE daemon's user owns every file; Samba acts as that user",
        f"   force user = {user}",
        "   create mask = 0644",
        "   directory mask = 0755",
        "   # macOS clients (Finder metadata in user.* xattrs, resource forks as ._ side files)",
        "   vfs objects = catia fruit streams_xattr",
        "   fruit:metadata = stream",
        "   fruit:resource = file",
        "   fruit:encoding = native",
        "   fruit:veto_appledouble = no",
        "   fruit:delete_empty_adfiles = yes",
        "   fruit:wipe_intentionally_left_blank_rfork = yes",
        "   ea support = yes",
        "   store dos attributes = yes",
        "   # FUSE has no leases; other clients (WebDAV) change files too",
        "   kernel oplocks = no",
        "   kernel share modes = no",
        "   posix locking = no",
        "   # sizes and times come from the catalog: no sendfile/AIO tricks on a FUSE mount",
        "   use sendfile = no",
        "   aio read size = 0",
        "   aio write size = 0",
    ]
    if guest:
        lines += ["   guest ok = yes"]
    return "\n".join(lines) + "\n"


def cmd_samba_config(args) -> int:
    print(f"# photovfs share: add to /etc/samba/smb.conf, then `smbcontrol smbd reload-config`.\n"
          f"# The mount must be running: photovfs mount {args.library} {args.mountpoint}"
          f"{'' if os.getuid() == 0 else ' --allow-other'}")
    print(share_section(args.library.expanduser().resolve(), args.mountpoint.expanduser().resolve(),
                        name=args.name, user=args.user, guest=args.guest,
                        read_only=args.read_only), end="")
    return 0
