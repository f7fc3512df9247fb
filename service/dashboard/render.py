"""Jinja2 for the dashboard: one environment, autoescaping every template (notes, improvement items, KR titles
and account names from the CRM are text, never markup), and the language-bound helpers the templates use."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from service.dashboard import i18n

ENVIRONMENT = Environment(
    loader=PackageLoader("service.dashboard", "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
STATUS_ICONS = {
    "on_track": "✓",
    "at_risk": "!",
    "off_track": "✗",
    "not_started": "○",
    "no_data": "–",
    "too_early": "…",
    "achieved": "★",
    "missed": "✗",
}
KAM_ICONS = {"met": "✓", "partly": "◐", "not_met": "✗", "not_assessed": "?"}


@cache
def stylesheet() -> str:
    return files("service.dashboard").joinpath("static/dashboard.css").read_text(encoding="utf-8")


def helpers(lang: str) -> dict[str, Any]:
    """The functions templates format with, in ``lang``."""
    t = i18n.Translator(lang)

    def n(shown: str | int) -> str:
        return i18n.localize_number(shown if isinstance(shown, str) else f"{shown:,}", lang)

    def pct(share: float | None) -> str:
        if share is None:
            return "–"
        return f"{share * 100:.0f} %" if lang == "de" else f"{share:.0%}"

    def width(share: float | None) -> str:
        return f"{max(0.0, min(1.0, share or 0.0)) * 100:.1f}"

    def when(at: datetime | None) -> str:
        return "–" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"

    def status_label(code: str) -> str:
        key = f"status_{code}"
        return t(key) if key in t else code.replace("_", " ")

    def kam_label(code: str) -> str:
        key = f"kam_{code}"
        return t(key) if key in t else code.replace("_", " ")

    def rule_label(kind: str, key: str) -> str:
        label = t(f"rule_{kind}") if f"rule_{kind}" in t else kind.replace("_", " ")
        return label if key == kind else f"{label} ({key})"

    def kam_needs(needs: tuple[str, dict[str, Any]] | None) -> str:
        """What satisfies a derived KAM criterion, as a sentence."""
        if needs is None:
            return ""
        key, params = needs
        values = dict(params)
        if "kinds" in values:
            words = [t(f"kinds_{kind}") if f"kinds_{kind}" in t else kind for kind in values["kinds"]]
            values["kinds"] = t("list_or").join(words)
        if "days" in values:
            days = values["days"]
            values["period"] = t("kam_period_cycle") if days is None else t("kam_period_days", days=days)
        return t(key, **values)

    return {
        "kam_needs": kam_needs,
        "t": t, "n": n, "pct": pct, "width": width, "when": when, "status_label": status_label,
        "status_class": lambda code: code if code in STATUS_ICONS else "unknown",
        "status_icon": lambda code: STATUS_ICONS.get(code, "·"), "kam_label": kam_label,
        "kam_class": lambda code: code if code in KAM_ICONS else "unknown",
        "kam_icon": lambda code: KAM_ICONS.get(code, "·"), "rule_label": rule_label,
    }  # fmt: skip


def render(template: str, *, lang: str, **context: Any) -> str:
    """Render ``template`` in ``lang`` (a key of ``i18n.LANGUAGES``); missing context has the defaults below."""
    values: dict[str, Any] = {
        "standalone": False, "mapping": None, "caller": None, "notice": None, "problem": None, "active": None,
        "form": {}, "can_record": False, "may_check_in": False, "show_role_hint": False,
        "my_owner_ids": frozenset(), "my_names": frozenset(), "owner": "", "elsewhere": None,
        "highlight": None, "crm_note": None,
        "generated_at": None, "languages": list(i18n.LANGUAGES), "lang_url": lambda code: f"?lang={code}",
    }  # fmt: skip
    values.update(context)
    if values["standalone"]:
        values["inline_css"] = Markup(stylesheet())  # our own file, not user text
    return ENVIRONMENT.get_template(template).render(lang=lang, **helpers(lang), **values)
