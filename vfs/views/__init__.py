"""One module per root folder; each answers the same small set of verbs (see base.View)."""

from .by_album import ByAlbum
from .by_date import ByDate
from .by_person import ByPerson
from .by_place import ByPlace
from .inbox import Inbox
from .originals import Originals
from .thumbnails import Thumbnails
from .trash import Trash

VIEW_CLASSES = {
    v.name: v for v in (ByDate, ByPerson, ByPlace, ByAlbum, Thumbnails, Originals, Inbox, Trash)
}
