"""The web application's languages: French, Dutch and English, from Babel catalogues.

The catalogues (``translations/<lang>/LC_MESSAGES/messages.po``) are compiled to ``.mo`` files kept beside
them; ``python -m mycarenet_ic.web.i18n`` extracts the messages of the templates and the code and
compiles the catalogues again (a unit test checks the ``.mo`` files say what the ``.po`` files say).
The language is the one the person chose with the switch (a cookie), else the browser's best match.
"""

from __future__ import annotations

import functools
from pathlib import Path

from babel.support import NullTranslations, Translations

LANGUAGES = ("fr", "nl", "en")
DEFAULT = "en"
LANGUAGE_NAMES = {"fr": "Français", "nl": "Nederlands", "en": "English"}
TRANSLATIONS_DIR = Path(__file__).with_name("translations")


def N_(message: str) -> str:  # noqa: N802 - the conventional name of the "mark for translation" marker
    """Marks ``message`` for extraction; it is translated where it is shown."""
    return message


@functools.cache
def translations(language: str) -> NullTranslations:
    if language not in LANGUAGES or language == DEFAULT:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [language], domain="messages")


def _compile() -> None:
    """Extract the messages, update every catalogue, compile them (a developer's command)."""
    import io

    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po, write_po

    here = Path(__file__).parent
    template = Catalog(project="mycarenet-ic", version="1")
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    for filename, lineno, message, comments, _ctx in extract_from_dir(
            str(here), method_map, keywords={"_": None, "N_": None, "gettext": None}):
        template.add(message, None, [(filename, lineno)], auto_comments=comments)
    for language in LANGUAGES:
        po = TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po"
        po.parent.mkdir(parents=True, exist_ok=True)
        catalog = (read_po(io.BytesIO(po.read_bytes()), locale=language) if po.exists()
                   else Catalog(locale=language))
        catalog.update(template, no_fuzzy_matching=True)
        buf = io.BytesIO()
        write_po(buf, catalog, omit_header=False, width=116, ignore_obsolete=True)
        po.write_bytes(buf.getvalue())
        with po.with_suffix(".mo").open("wb") as out:
            write_mo(out, catalog)
        missing = [m.id for m in catalog if m.id and not m.string] if language != DEFAULT else []
        print(f"{po}: {len(catalog)} messages" + (f", {len(missing)} untranslated" if missing else ""))


if __name__ == "__main__":
    _compile()
