"""The interface's texts in German (default) and English, keyed by message id.

>>> t("nav.catalogue", "en")
'Catalogue'
>>> t("catalogue.count", "de", n=3)
'3 Datensätze'
"""

from __future__ import annotations

from typing import Any

LANGS = ("de", "en")
DEFAULT = "de"

# message id: (German, English). Placeholders in braces are filled by ``t(..., name=value)``.
MESSAGES: dict[str, tuple[str, str]] = {
    # layout
    "nav.skip": ("Zum Inhalt springen", "Skip to content"),
    "nav.label": ("Hauptnavigation", "Main navigation"),
    "nav.language": ("Sprache", "Language"),
    "nav.catalogue": ("Katalog", "Catalogue"),
    "nav.sql": ("SQL", "SQL"),
    "nav.upload": ("Hochladen", "Upload"),
    "nav.admin": ("Verwaltung", "Administration"),
    "nav.account": ("Konto", "Account"),
    "nav.audit": ("Protokoll", "Audit log"),
    "nav.login": ("Anmelden", "Sign in"),
    "nav.logout": ("Abmelden", "Sign out"),
    "nav.signed_in_as": ("Angemeldet als", "Signed in as"),
    "footer.licence": ("Freie Software unter der EUPL-1.2", "Free software under the EUPL-1.2"),
    "footer.api": ("API-Dokumentation", "API documentation"),
    # roles, scopes, visibility, modes
    "role.admin": ("Administration", "administrator"),
    "role.steward": ("Datenverantwortung", "data steward"),
    "role.analyst": ("Analyse", "analyst"),
    "role.viewer": ("Lesezugriff", "viewer"),
    "role.None": ("ohne Rolle", "no role"),
    "scope.read": ("nur lesen", "read only"),
    "scope.write": ("lesen und schreiben", "read and write"),
    "visibility.public": ("öffentlich", "public"),
    "visibility.internal": ("intern", "internal"),
    "visibility.restricted": ("eingeschränkt", "restricted"),
    "spatial_level.germany": ("Deutschland", "Germany"),
    "spatial_level.land": ("Land", "federal state"),
    "spatial_level.regierungsbezirk": ("Regierungsbezirk", "government region"),
    "spatial_level.kreis": ("Kreis", "district"),
    "spatial_level.gemeindeverband": ("Gemeindeverband", "municipal association"),
    "spatial_level.gemeinde": ("Gemeinde", "municipality"),
    "mode.replace": ("ersetzen", "replace"),
    "mode.append": ("anhängen", "append"),
    "mode.upsert": ("aktualisieren nach Schlüssel", "update by key (upsert)"),
    # confirmations after a form (?done=...)
    "done.logout": ("Sie sind abgemeldet.", "You are signed out."),
    "done.metadata": ("Die Metadaten sind gespeichert.", "The metadata has been saved."),
    "done.grant": ("Die Freigabe ist eingerichtet.", "The grant has been added."),
    "done.revoked": ("Die Freigabe ist entzogen.", "The grant has been revoked."),
    "done.deleted": (
        "Der Datensatz ist gelöscht und wird nach der Aufbewahrungsfrist endgültig entfernt.",
        "The dataset has been deleted; it is purged after the retention period.",
    ),
    "done.uploaded": ("Die neue Version ist gespeichert.", "The new version has been saved."),
    "done.org": ("Die Organisation ist gespeichert.", "The organisation has been saved."),
    "done.user": ("Das Benutzerkonto ist angelegt.", "The user account has been created."),
    "done.user-changed": ("Das Benutzerkonto ist geändert.", "The user account has been changed."),
    "done.token-revoked": ("Der API-Schlüssel ist widerrufen.", "The API token has been revoked."),
    # errors
    "error.400.title": ("Ungültige Anfrage", "Bad request"),
    "error.400.text": (
        "Die Anfrage enthält ungültige Angaben. Bitte prüfen Sie Ihre Eingaben.",
        "The request contains invalid input. Please check what you entered.",
    ),
    "error.403.title": ("Kein Zugriff", "Access denied"),
    "error.403.text": (
        "Sie haben keine Berechtigung für diese Seite oder Aktion.",
        "You are not allowed to open this page or do this.",
    ),
    "error.404.title": ("Nicht gefunden", "Not found"),
    "error.404.text": (
        "Diese Seite oder dieser Datensatz existiert nicht oder ist für Sie nicht sichtbar.",
        "This page or dataset does not exist or is not visible to you.",
    ),
    "error.409.title": ("Konflikt", "Conflict"),
    "error.409.text": (
        "Die Aktion passt nicht zum aktuellen Stand der Daten.",
        "The action conflicts with the current state of the data.",
    ),
    "error.413.title": ("Datei zu groß", "File too large"),
    "error.413.text": (
        "Die Datei überschreitet die erlaubte Größe.",
        "The file is larger than allowed.",
    ),
    "error.other.title": ("Fehler", "Error"),
    "error.other.text": (
        "Etwas ist schiefgegangen. Bitte versuchen Sie es später erneut.",
        "Something went wrong. Please try again later.",
    ),
    "error.detail": ("Einzelheiten:", "Details:"),
    "error.maybe_login": (
        "Sie sind nicht angemeldet. Nach der Anmeldung sehen Sie eventuell mehr.",
        "You are not signed in. After signing in you may see more.",
    ),
    "error.back": ("Zurück zum Katalog", "Back to the catalogue"),
    # login
    "login.title": ("Anmelden", "Sign in"),
    "login.username": ("Benutzername", "User name"),
    "login.password": ("Passwort", "Password"),
    "login.submit": ("Anmelden", "Sign in"),
    "login.or": ("oder", "or"),
    "login.oidc": (
        "Mit Dienstkonto anmelden / Sign in with organisation account",
        "Sign in with organisation account / Mit Dienstkonto anmelden",
    ),
    "login.failed": (
        "Anmeldung fehlgeschlagen: Benutzername oder Passwort ist falsch.",
        "Sign-in failed: wrong user name or password.",
    ),
    "login.expired": (
        "Das Anmeldeformular ist abgelaufen. Bitte versuchen Sie es erneut.",
        "The sign-in form has expired. Please try again.",
    ),
    # catalogue
    "catalogue.title": ("Datenkatalog", "Data catalogue"),
    "catalogue.search_label": ("Datensätze durchsuchen", "Search datasets"),
    "catalogue.search": ("Suchen", "Search"),
    "catalogue.search_hint": (
        "Sucht in Titel, Beschreibung, Schlagworten, Themen und Organisation.",
        "Searches titles, descriptions, keywords, themes and organisations.",
    ),
    "catalogue.filters": ("Filter", "Filters"),
    "catalogue.no_filters": ("Keine Filter verfügbar.", "No filters available."),
    "catalogue.apply": ("Filter anwenden", "Apply filters"),
    "catalogue.reset": ("Suche und Filter zurücksetzen", "Reset search and filters"),
    "catalogue.count": ("{n} Datensätze", "{n} datasets"),
    "catalogue.count_one": ("1 Datensatz", "1 dataset"),
    "catalogue.empty": ("Keine Datensätze gefunden.", "No datasets found."),
    "catalogue.empty_login": (
        "Nach der Anmeldung sehen Sie eventuell mehr.",
        "After signing in you may see more.",
    ),
    "facet.organisation": ("Organisation", "Organisation"),
    "facet.theme": ("Thema", "Theme"),
    "facet.licence": ("Lizenz", "Licence"),
    "facet.format": ("Format", "Format"),
    "facet.spatial_level": ("Raumbezug", "Spatial level"),
    "facet.visibility": ("Sichtbarkeit", "Visibility"),
    # metadata
    "meta.slug": ("Kennung", "Identifier"),
    "meta.title": ("Titel", "Title"),
    "meta.description": ("Beschreibung", "Description"),
    "meta.publisher": ("Organisation", "Organisation"),
    "meta.version": ("Version", "Version"),
    "meta.rows": ("Zeilen", "Rows"),
    "meta.rows_unknown": ("nicht angegeben", "not shown"),
    "meta.format": ("Format", "Format"),
    "meta.licence": ("Lizenz", "Licence"),
    "meta.visibility": ("Sichtbarkeit", "Visibility"),
    "meta.partial": ("Teilansicht", "partial view"),
    "meta.updated": ("Zuletzt geändert", "Last changed"),
    "meta.keywords": ("Schlagworte", "Keywords"),
    "meta.themes": ("Themen", "Themes"),
    "meta.spatial": ("Raumbezug (AGS/ARS)", "Spatial coverage (AGS/ARS)"),
    "meta.temporal": ("Zeitraum", "Time period"),
    "meta.temporal_start": ("Zeitraum von", "Period from"),
    "meta.temporal_end": ("Zeitraum bis", "Period until"),
    "meta.contact": ("Kontakt", "Contact"),
    "meta.primary_key": ("Schlüssel", "Key"),
    # dataset page
    "dataset.toc": ("Auf dieser Seite", "On this page"),
    "dataset.overview": ("Überblick", "Overview"),
    "dataset.preview": ("Vorschau", "Preview"),
    "dataset.downloads": ("Herunterladen", "Downloads"),
    "dataset.versions": ("Versionen", "Versions"),
    "dataset.schema": ("Schema", "Schema"),
    "dataset.quality": ("Datenqualität", "Data quality"),
    "dataset.diff": ("Versionen vergleichen", "Compare versions"),
    "dataset.manage": ("Datensatz verwalten", "Manage dataset"),
    "dataset.partial": (
        "Sie sehen eine Teilansicht: einzelne Spalten oder Zeilen sind für Sie nicht freigegeben.",
        "You see a partial view: some columns or rows are not shared with you.",
    ),
    "preview.of_version": ("Version {v}", "version {v}"),
    "preview.add_filter": ("Filter hinzufügen", "Add a filter"),
    "preview.column": ("Spalte", "Column"),
    "preview.operator": ("Vergleich", "Comparison"),
    "preview.value": ("Wert", "Value"),
    "preview.value_hint": (
        "Bei „ist eine von“ Werte mit Komma trennen; bei „ist leer“ true oder false.",
        "For “is one of” separate values with commas; for “is empty” true or false.",
    ),
    "preview.order": ("Reihenfolge", "Order"),
    "preview.sort": ("Sortieren nach", "Sort by"),
    "preview.sort_none": ("ursprüngliche Reihenfolge", "original order"),
    "preview.asc": ("aufsteigend", "ascending"),
    "preview.desc": ("absteigend", "descending"),
    "preview.apply": ("Anwenden", "Apply"),
    "preview.active_filters": ("Aktive Filter", "Active filters"),
    "preview.remove": ("entfernen", "remove"),
    "preview.error": ("Die Filter passen nicht:", "The filters do not fit:"),
    "preview.caption": ("Zeilen auf dieser Seite ({n})", "Rows on this page ({n})"),
    "preview.none": ("Keine Zeilen.", "No rows."),
    "preview.first": ("Zum Anfang", "First page"),
    "preview.next": ("Weiter", "Next"),
    "preview.as_json": ("Diese Auswahl als JSON (API)", "This selection as JSON (API)"),
    "op.eq": ("ist gleich", "equals"),
    "op.ne": ("ist ungleich", "does not equal"),
    "op.lt": ("kleiner als", "less than"),
    "op.lte": ("kleiner oder gleich", "less than or equal"),
    "op.gt": ("größer als", "greater than"),
    "op.gte": ("größer oder gleich", "greater than or equal"),
    "op.contains": ("enthält", "contains"),
    "op.startswith": ("beginnt mit", "starts with"),
    "op.in": ("ist eine von", "is one of"),
    "op.notin": ("ist keine von", "is none of"),
    "op.isnull": ("ist leer", "is empty"),
    "download.latest": ("Aktuelle Version ({v}):", "Current version ({v}):"),
    "download.csv_de": ("CSV für Excel (deutsch, Semikolon)", "CSV for Excel (German, semicolon)"),
    "download.csv_intl": ("CSV international (Komma)", "CSV international (comma)"),
    "download.xlsx": ("Excel-Arbeitsmappe (XLSX)", "Excel workbook (XLSX)"),
    "download.parquet": ("Parquet", "Parquet"),
    "download.json": ("JSON", "JSON"),
    "download.other": ("Andere Version oder anderes Format", "Another version or format"),
    "download.format": ("Format", "Format"),
    "download.dialect": ("CSV-Variante", "CSV variant"),
    "download.dialect.de": ("deutsch (;)", "German (;)"),
    "download.dialect.intl": ("international (,)", "international (,)"),
    "download.submit": ("Herunterladen", "Download"),
    "version.heading": ("Version {v}", "Version {v}"),
    "version.current": ("aktuell", "current"),
    "version.when": ("Zeitpunkt", "When"),
    "version.who": ("Von", "By"),
    "version.source": ("Quelldatei", "Source file"),
    "version.mode": ("Ladeart", "Mode"),
    "version.preview": ("Vorschau von Version {v}", "Preview of version {v}"),
    "schema.caption": ("Spalten der Version {v}", "Columns of version {v}"),
    "schema.column": ("Spalte", "Column"),
    "schema.type": ("Typ", "Type"),
    "schema.storage": ("Speichertyp", "Storage type"),
    "schema.semantic": ("Bedeutung", "Meaning"),
    "schema.description": ("Beschreibung", "Description"),
    "schema.key": ("Schlüssel", "key"),
    # quality
    "quality.none": ("Für diese Version gibt es keinen Qualitätsbericht.", "No quality report."),
    "quality.score": ("Qualitätswert", "Quality score"),
    "quality.errors": ("Fehler", "Errors"),
    "quality.warnings": ("Warnungen", "Warnings"),
    "quality.infos": ("Hinweise", "Notes"),
    "quality.score_hint": (
        "Der Qualitätswert ist der Anteil der Zellen ohne festgestellten Mangel (fehlend, "
        "falscher Typ, ungültiger Schlüssel, unplausibles Datum).",
        "The score is the share of cells without a recorded defect (missing, wrong type, "
        "invalid key, implausible date).",
    ),
    "quality.issues": ("Festgestellte Probleme", "Issues found"),
    "quality.issues_caption": ("Festgestellte Probleme ({n})", "Issues found ({n})"),
    "quality.no_issues": ("Keine Probleme festgestellt.", "No issues found."),
    "quality.severity": ("Schwere", "Severity"),
    "quality.message": ("Beschreibung (englisch)", "Description"),
    "quality.count": ("Anzahl", "Count"),
    "severity.error": ("Fehler", "error"),
    "severity.warning": ("Warnung", "warning"),
    "severity.info": ("Hinweis", "note"),
    "quality.columns": ("Spalten im Einzelnen", "Column by column"),
    "quality.columns_caption": ("Vollständigkeit und Werte je Spalte", "Completeness and values"),
    "quality.completeness": ("Vollständigkeit", "Completeness"),
    "quality.missing": ("{n} fehlend", "{n} missing"),
    "quality.distinct": ("Verschiedene Werte", "Distinct values"),
    "quality.approx": ("geschätzt", "estimated"),
    "quality.range": ("Wertebereich", "Range"),
    "quality.length": ("Länge {a} bis {b}", "length {a} to {b}"),
    "quality.top": ("Häufigste Werte", "Most frequent values"),
    "quality.suggestion": ("Typvorschlag", "Suggested type"),
    "quality.conforming": ("{share} passen zum Typ", "{share} fit the type"),
    "quality.key": ("Schlüsselprüfung", "Key check"),
    "quality.key_text": (
        "Schlüssel {fields}: {nulls} Zeilen ohne Schlüssel, {dups} doppelte Schlüssel.",
        "Key {fields}: {nulls} rows without a key, {dups} duplicate keys.",
    ),
    # diff
    "diff.from": ("Von Version", "From version"),
    "diff.to": ("Bis Version", "To version"),
    "diff.submit": ("Vergleichen", "Compare"),
    "diff.single": (
        "Es gibt erst eine Version; ein Vergleich ist ab der zweiten möglich.",
        "There is only one version; comparing needs at least two.",
    ),
    "diff.title": ("Vergleich von Version {a} mit {b}", "Version {a} compared with {b}"),
    "diff.summary": ("Zusammenfassung", "Summary"),
    "diff.added": ("Neue Zeilen", "Added rows"),
    "diff.removed": ("Entfernte Zeilen", "Removed rows"),
    "diff.changed": ("Geänderte Zeilen", "Changed rows"),
    "diff.by_key": (
        "Zeilen werden über den Schlüssel {key} zugeordnet.",
        "Rows are matched by the key {key}.",
    ),
    "diff.by_row": (
        "Ohne Schlüssel werden ganze Zeilen verglichen: eine Änderung erscheint als entfernte "
        "und neue Zeile.",
        "Without a key whole rows are compared: an edit shows as a removed and an added row.",
    ),
    "diff.schema": ("Spalten", "Columns"),
    "diff.schema_same": ("Die Spalten sind unverändert.", "The columns are unchanged."),
    "diff.col_added": ("Neue Spalte {name} ({type})", "New column {name} ({type})"),
    "diff.col_removed": ("Entfernte Spalte {name} ({type})", "Removed column {name} ({type})"),
    "diff.col_type": ("Spalte {name}: Typ {a} → {b}", "Column {name}: type {a} → {b}"),
    "diff.rows_added": ("Neue Zeilen (Auszug)", "Added rows (excerpt)"),
    "diff.rows_removed": ("Entfernte Zeilen (Auszug)", "Removed rows (excerpt)"),
    "diff.rows_changed": ("Geänderte Werte (Auszug)", "Changed values (excerpt)"),
    "diff.key": ("Schlüssel", "Key"),
    "diff.before": ("Vorher", "Before"),
    "diff.after": ("Nachher", "After"),
    "diff.back": ("Zurück zum Datensatz", "Back to the dataset"),
    # managing a dataset
    "manage.failed": ("Das hat nicht geklappt:", "That did not work:"),
    "manage.new_version": ("Neue Version hochladen", "Upload a new version"),
    "manage.metadata": ("Metadaten bearbeiten", "Edit metadata"),
    "manage.unchanged": ("unverändert", "unchanged"),
    "manage.comma": ("Mehrere Angaben mit Komma trennen.", "Separate several entries by commas."),
    "manage.spatial_hint": (
        "Amtliche Schlüssel, z. B. 05 für Nordrhein-Westfalen oder 05315 für Köln.",
        "Official keys, e.g. 05 for North Rhine-Westphalia or 05315 for Cologne.",
    ),
    "manage.save": ("Speichern", "Save"),
    "manage.delete": ("Datensatz löschen", "Delete dataset"),
    "manage.delete_text": (
        "Der Datensatz verschwindet sofort aus dem Katalog und wird nach der "
        "Aufbewahrungsfrist endgültig entfernt.",
        "The dataset disappears from the catalogue at once and is purged after the "
        "retention period.",
    ),
    "manage.delete_confirm": (
        "Zur Bestätigung die Kennung „{slug}“ eingeben",
        "Type the identifier “{slug}” to confirm",
    ),
    "manage.delete_submit": ("Endgültig löschen", "Delete"),
    "grants.title": ("Freigaben", "Grants"),
    "grants.not_restricted": (
        "Freigaben gibt es nur für eingeschränkte Datensätze; dieser ist für alle "
        "Berechtigten vollständig sichtbar.",
        "Grants exist only for restricted datasets; everyone who sees this one sees it whole.",
    ),
    "grants.caption": ("Bestehende Freigaben", "Existing grants"),
    "grants.none": ("Noch keine Freigaben.", "No grants yet."),
    "grants.to": ("Für", "For"),
    "grants.hidden": ("Verborgene Spalten", "Hidden columns"),
    "grants.rows": ("Zeilen", "Rows"),
    "grants.all_rows": ("alle", "all"),
    "grants.by": ("Eingerichtet", "Granted"),
    "grants.action": ("Aktion", "Action"),
    "grants.revoke": ("Entziehen", "Revoke"),
    "grants.add": ("Freigabe hinzufügen", "Add a grant"),
    "grants.for": ("Freigabe für", "Grant to"),
    "grants.org": ("Organisation", "Organisation"),
    "grants.user": ("Person", "User"),
    "grants.user_name": ("Benutzername (bei Freigabe für eine Person)", "User name (for a user)"),
    "grants.hide": ("Diese Spalten verbergen", "Hide these columns"),
    "grants.row_filter": ("Zeilenfilter (optional)", "Row filter (optional)"),
    "grants.row_filter_hint": (
        "SQL-Bedingung, z. B. land = '05'. Leer lassen für alle Zeilen.",
        "An SQL condition, e.g. land = '05'. Leave empty for all rows.",
    ),
    "grants.submit": ("Freigeben", "Grant"),
    # SQL
    "sql.title": ("SQL-Abfrage", "SQL query"),
    "sql.label": ("Abfrage (nur SELECT)", "Query (SELECT only)"),
    "sql.hint": (
        'Tabellen heißen wie die Datensätze, z. B. "bevoelkerung"; eine bestimmte Version mit '
        '"bevoelkerung@2". Angezeigt werden höchstens {n} Zeilen.',
        'Tables are named like the datasets, e.g. "population"; a given version as '
        '"population@2". At most {n} rows are shown.',
    ),
    "sql.run": ("Abfrage ausführen", "Run query"),
    "sql.failed": ("Die Abfrage ist fehlgeschlagen:", "The query failed:"),
    "sql.not_allowed": (
        "Mit Ihrer Rolle können Sie keine SQL-Abfragen ausführen.",
        "Your role does not allow SQL queries.",
    ),
    "sql.result": ("Ergebnis", "Result"),
    "sql.summary": ("Zeilen: {n} · Laufzeit: {s} s", "Rows: {n} · time: {s} s"),
    "sql.truncated": (
        "Das Ergebnis wurde nach {n} Zeilen abgeschnitten.",
        "The result was cut off after {n} rows.",
    ),
    "sql.provenance": ("Herkunft", "Provenance"),
    "sql.no_sources": ("keine Datensätze gelesen", "no datasets read"),
    "sql.table_caption": ("Ergebniszeilen", "Result rows"),
    "sql.tables": ("Verfügbare Tabellen", "Available tables"),
    "sql.tables_hint": ("Datensätze, die Sie lesen dürfen.", "Datasets you may read."),
    "chart.title": ("Schnelldiagramm", "Quick chart"),
    "chart.x": ("Kategorie / x-Achse", "Category / x axis"),
    "chart.y": ("Wert / y-Achse", "Value / y axis"),
    "chart.kind": ("Art", "Kind"),
    "chart.bar": ("Balken", "Bar"),
    "chart.line": ("Linie", "Line"),
    "chart.draw": ("Diagramm zeichnen", "Draw chart"),
    "chart.no_numbers": (
        "Das Ergebnis hat keine Zahlenspalte für die y-Achse.",
        "The result has no numeric column for the y axis.",
    ),
    "chart.label": ("Diagramm des Abfrageergebnisses", "Chart of the query result"),
    "chart.described": ("Diagramm: {y} nach {x}", "Chart: {y} by {x}"),
    "chart.as_table": ("Daten des Diagramms als Tabelle", "Chart data as a table"),
    # upload
    "upload.title": ("Daten hochladen", "Upload data"),
    "upload.intro": (
        "Laden Sie eine Datei als neuen Datensatz oder als neue Version eines bestehenden hoch.",
        "Upload a file as a new dataset or as a new version of an existing one.",
    ),
    "upload.not_allowed": (
        "Hochladen dürfen nur Administration und Datenverantwortliche einer Organisation.",
        "Only administrators and data stewards of an organisation may upload.",
    ),
    "upload.step1": ("Schritt 1: Datei", "Step 1: file"),
    "upload.step2": ("Schritt 2: Datensatz und Metadaten", "Step 2: dataset and metadata"),
    "upload.step3": ("Schritt 3: Ladeart", "Step 3: loading"),
    "upload.file": ("Datei", "File"),
    "upload.file_hint": (
        "CSV (auch GENESIS-Exporte), Excel, Parquet oder JSON; höchstens {size} GB.",
        "CSV (GENESIS exports too), Excel, Parquet or JSON; at most {size} GB.",
    ),
    "upload.dataset": ("Kennung des Datensatzes", "Dataset identifier"),
    "upload.dataset_hint": (
        "Kleinbuchstaben, Ziffern, - und _, beginnend mit einem Buchstaben. Eine bestehende "
        "Kennung legt eine neue Version an.",
        "Lower-case letters, digits, - and _, starting with a letter. An existing identifier "
        "adds a new version.",
    ),
    "upload.org": ("Veröffentlichende Organisation", "Publishing organisation"),
    "upload.no_licence": ("keine Angabe", "not given"),
    "upload.visibility_default": ("Standard (bzw. unverändert)", "default (or unchanged)"),
    "upload.visibility_hint": (
        "Öffentlich: alle; intern: alle Angemeldeten; eingeschränkt: nur Ihre Organisation "
        "und Freigaben.",
        "Public: everyone; internal: everyone signed in; restricted: your organisation and "
        "grants only.",
    ),
    "upload.mode_hint": (
        "Ersetzen lädt den vollständigen Stand; anhängen fügt Zeilen hinzu; aktualisieren "
        "ersetzt Zeilen mit gleichem Schlüssel.",
        "Replace loads the full state; append adds rows; upsert replaces rows with the same key.",
    ),
    "upload.key": ("Schlüsselspalten (optional)", "Key columns (optional)"),
    "upload.key_hint": (
        "Spaltennamen mit Komma getrennt; nötig für „aktualisieren nach Schlüssel“.",
        "Column names separated by commas; needed for upsert.",
    ),
    "upload.submit": ("Hochladen", "Upload"),
    "upload.progress": ("Fortschritt des Hochladens", "Upload progress"),
    "upload.sending": ("Wird hochgeladen: {p} %", "Uploading: {p}%"),
    "upload.processing": (
        "Datei übertragen; sie wird geprüft und gespeichert …",
        "File sent; it is being checked and stored …",
    ),
    "upload.done": ("Fertig: Version {v} von {d} ist gespeichert.", "Done: version {v} of {d}."),
    "upload.failed": ("Hochladen fehlgeschlagen:", "Upload failed:"),
    "upload.open": ("Datensatz öffnen", "Open the dataset"),
    # administration
    "admin.title": ("Verwaltung", "Administration"),
    "admin.failed": ("Das hat nicht geklappt:", "That did not work:"),
    "admin.orgs": ("Organisationen", "Organisations"),
    "admin.orgs_caption": ("Organisationen ({n})", "Organisations ({n})"),
    "admin.org_slug": ("Kürzel", "Short name"),
    "admin.org_slug_hint": (
        "Kleinbuchstaben, Ziffern und -, beginnend mit einem Buchstaben.",
        "Lower-case letters, digits and -, starting with a letter.",
    ),
    "admin.org_name": ("Name", "Name"),
    "admin.add_org": ("Organisation hinzufügen", "Add an organisation"),
    "admin.add": ("Hinzufügen", "Add"),
    "admin.users": ("Benutzerkonten", "User accounts"),
    "admin.users_caption": ("Benutzerkonten ({n})", "User accounts ({n})"),
    "admin.display_name": ("Anzeigename", "Display name"),
    "admin.email": ("E-Mail-Adresse", "E-mail address"),
    "admin.org": ("Organisation", "Organisation"),
    "admin.role": ("Rolle", "Role"),
    "admin.role_of": ("Rolle von {user}", "Role of {user}"),
    "admin.status": ("Status", "Status"),
    "admin.active": ("aktiv", "active"),
    "admin.inactive": ("deaktiviert", "deactivated"),
    "admin.change_role": ("Rolle ändern", "Change role"),
    "admin.activate": ("Aktivieren", "Activate"),
    "admin.deactivate": ("Deaktivieren", "Deactivate"),
    "admin.yourself": ("Ihr eigenes Konto", "your own account"),
    "admin.add_user": ("Benutzerkonto anlegen", "Create a user account"),
    "admin.password_hint": (
        "Mindestens 12 Zeichen. Leer lassen für Konten, die sich nur per Dienstkonto anmelden.",
        "At least 12 characters. Leave empty for accounts that sign in with SSO only.",
    ),
    "tokens.title": ("Eigene API-Schlüssel", "Your API tokens"),
    "tokens.intro": (
        "Mit einem API-Schlüssel greifen Programme in Ihrem Namen auf die API zu "
        "(Kopfzeile Authorization: Bearer …).",
        "Programs use an API token to call the API on your behalf "
        "(header Authorization: Bearer …).",
    ),
    "tokens.caption": ("Ihre API-Schlüssel", "Your API tokens"),
    "tokens.none": ("Sie haben noch keine API-Schlüssel.", "You have no API tokens yet."),
    "tokens.name": ("Bezeichnung", "Name"),
    "tokens.prefix": ("Anfang", "Prefix"),
    "tokens.scope": ("Berechtigung", "Scope"),
    "tokens.created": ("Erstellt", "Created"),
    "tokens.expires": ("Gültig bis", "Expires"),
    "tokens.never": ("unbefristet", "never"),
    "tokens.used": ("Zuletzt benutzt", "Last used"),
    "tokens.revoked": ("widerrufen", "revoked"),
    "tokens.revoke": ("Widerrufen", "Revoke"),
    "tokens.create": ("Neuen API-Schlüssel erstellen", "Create an API token"),
    "tokens.days": ("Gültigkeit in Tagen", "Valid for days"),
    "tokens.submit": ("Erstellen", "Create"),
    "tokens.new": ("Ihr neuer API-Schlüssel", "Your new API token"),
    "tokens.once": (
        "Kopieren Sie den Schlüssel jetzt: er wird nur dieses eine Mal angezeigt.",
        "Copy the token now: it is shown only this once.",
    ),
    "tokens.value": ("API-Schlüssel", "API token"),
    # audit
    "audit.title": ("Zugriffsprotokoll", "Audit log"),
    "audit.intro": (
        "Jeder Zugriff auf Daten und jede Änderung, neueste zuerst.",
        "Every access to data and every change, newest first.",
    ),
    "audit.intro_steward": (
        "Zugriffe auf die Datensätze Ihrer Organisation ({org}), neueste zuerst.",
        "Accesses to your organisation's datasets ({org}), newest first.",
    ),
    "audit.filters": ("Einträge filtern", "Filter entries"),
    "audit.actor": ("Person", "Actor"),
    "audit.action": ("Aktion", "Action"),
    "audit.any": ("alle", "any"),
    "audit.dataset": ("Datensatz", "Dataset"),
    "audit.since": ("Ab (Datum)", "From (date)"),
    "audit.until": ("Vor (Datum)", "Before (date)"),
    "audit.apply": ("Filtern", "Filter"),
    "audit.bad_filter": ("Der Filter ist ungültig:", "The filter is invalid:"),
    "audit.export": ("Diese Auswahl exportieren:", "Export this selection:"),
    "audit.caption": ("Einträge auf dieser Seite ({n})", "Entries on this page ({n})"),
    "audit.when": ("Zeitpunkt", "When"),
    "audit.datasets": ("Datensätze", "Datasets"),
    "audit.outcome": ("Ergebnis", "Outcome"),
    "audit.detail": ("Einzelheiten", "Details"),
    "audit.none": ("Keine Einträge.", "No entries."),
    "audit.newest": ("Zu den neuesten Einträgen", "Newest entries"),
    "audit.older": ("Ältere Einträge", "Older entries"),
}


def has(key: str) -> bool:
    return key in MESSAGES


def t(msgid: str, lang: str = DEFAULT, /, **params: Any) -> str:
    """The text of ``msgid`` in ``lang`` (German if unknown), placeholders filled."""
    entry = MESSAGES.get(msgid)
    if entry is None:
        return msgid  # a visible gap is easier to find than an exception in a template
    text = entry[1] if lang == "en" else entry[0]
    return text.format(**params) if params else text


def negotiate(header: str) -> str:
    """The best of our languages for an ``Accept-Language`` header; German by default."""
    best, best_q = DEFAULT, 0.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower().split("-")[0]
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if code in LANGS and q > best_q:
            best, best_q = code, q
    return best
