"""Licence identifiers of the German open-data ecosystem and the pool's licence codes.

The pool stores a short code per dataset (the keys of
:data:`datenlabor.pool.catalog.LICENCES`, e.g. ``dl-de/by-2-0``); DCAT-AP.de names licences by
URIs of the vocabulary ``http://dcat-ap.de/def/licenses/``; CKAN portals put either that URI or
an older short id into ``license_id``. This module is the one table between them, for both
directions:

>>> code_of("http://dcat-ap.de/def/licenses/dl-by-de/2.0")
'dl-de/by-2-0'
>>> code_of("http://dcat-ap.de/def/licenses/dl-by-de/2_0")   # DCAT-AP.de 1.0 spelling
'dl-de/by-2-0'
>>> uri_of("CC-BY-4.0")
'http://dcat-ap.de/def/licenses/cc-by/4.0'
>>> code_of("http://dcat-ap.de/def/licenses/cc-nc") is None  # not a licence the pool offers
True
"""

from __future__ import annotations

from datenlabor.pool.catalog import LICENCES

VOCABULARY = "http://dcat-ap.de/def/licenses/"

#: Other names of the pool's licences: older spellings of the DCAT-AP.de vocabulary (1.0 used
#: ``2_0`` where 2.0 uses ``2.0``; ``official-work`` became ``officialWork``), CKAN license ids
#: seen on GovData and in ckan's default licence list, and the licence pages themselves.
#: Keys are compared case-insensitively and without a trailing slash.
ALIASES: dict[str, str] = {
    # Datenlizenz Deutschland – Namensnennung 2.0
    VOCABULARY + "dl-by-de/2_0": "dl-de/by-2-0",
    "dl-by-de/2.0": "dl-de/by-2-0",
    "dl-de-by-2.0": "dl-de/by-2-0",
    "dl-de/by-2-0": "dl-de/by-2-0",
    "https://www.govdata.de/dl-de/by-2-0": "dl-de/by-2-0",
    # Datenlizenz Deutschland – Zero 2.0
    VOCABULARY + "dl-zero-de/2_0": "dl-de/zero-2-0",
    "dl-zero-de/2.0": "dl-de/zero-2-0",
    "dl-de-zero-2.0": "dl-de/zero-2-0",
    "dl-de/zero-2-0": "dl-de/zero-2-0",
    "https://www.govdata.de/dl-de/zero-2-0": "dl-de/zero-2-0",
    # Creative Commons BY 4.0
    VOCABULARY + "cc-by/4_0": "CC-BY-4.0",
    "cc-by-4.0": "CC-BY-4.0",
    "cc-by/4.0": "CC-BY-4.0",
    "http://creativecommons.org/licenses/by/4.0": "CC-BY-4.0",
    "https://creativecommons.org/licenses/by/4.0": "CC-BY-4.0",
    # Creative Commons BY-SA 4.0
    VOCABULARY + "cc-by-sa/4_0": "CC-BY-SA-4.0",
    "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-by-sa/4.0": "CC-BY-SA-4.0",
    "http://creativecommons.org/licenses/by-sa/4.0": "CC-BY-SA-4.0",
    "https://creativecommons.org/licenses/by-sa/4.0": "CC-BY-SA-4.0",
    # Creative Commons Zero
    "cc-zero": "CC0-1.0",
    "cc0-1.0": "CC0-1.0",
    "http://creativecommons.org/publicdomain/zero/1.0": "CC0-1.0",
    "https://creativecommons.org/publicdomain/zero/1.0": "CC0-1.0",
    # Amtliches Werk (§ 5 UrhG)
    VOCABULARY + "official-work": "officialWork",
    "officialwork": "officialWork",
    "official-work": "officialWork",
    # Closed licence
    "other-closed": "other-closed",
}


def _norm(text: str) -> str:
    return text.strip().rstrip("/").lower()


_TABLE: dict[str, str] = {
    **{_norm(uri): code for code, (_title, uri) in LICENCES.items()},
    **{_norm(code): code for code in LICENCES},
    **{_norm(alias): code for alias, code in ALIASES.items()},
}


def code_of(identifier: str | None) -> str | None:
    """The pool's licence code for a DCAT-AP.de licence URI or CKAN license id (None: unknown)."""
    if not identifier or not identifier.strip():
        return None
    return _TABLE.get(_norm(identifier))


def uri_of(code: str | None) -> str | None:
    """The DCAT-AP.de licence URI of a pool licence code (None for an unknown code)."""
    if code is None or code not in LICENCES:
        return None
    return LICENCES[code][1]
