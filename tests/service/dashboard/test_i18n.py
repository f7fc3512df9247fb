"""Both languages have every word, every word a template or page asks for exists, and the language is chosen from
the parameter, the cookie, then Accept-Language."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_args

import pytest

from mappings.config import KeyResult
from mappings.hygiene_rules import HygieneRule
from mappings.kam import MET, NOT_ASSESSED, NOT_MET, PARTLY
from mappings.scoring import ACHIEVED, AT_RISK, MISSED, NO_DATA, NOT_STARTED, OFF_TRACK, ON_TRACK, TOO_EARLY
from service.dashboard import access, i18n
from service.kit.auth import Role

DASHBOARD = Path(i18n.__file__).parent


def test_both_languages_have_the_same_words() -> None:
    assert set(i18n.EN) == set(i18n.DE)
    assert all(i18n.EN[k].count("{") == i18n.DE[k].count("{") for k in i18n.EN)  # same placeholders


def test_no_word_is_written_twice_in_one_language() -> None:
    """A key repeated in a dict literal silently replaces the first (it once turned "Records that counted" into
    "evidence")."""
    tree = ast.parse((DASHBOARD / "i18n.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            assert len(keys) == len(set(keys)), sorted(k for k in set(keys) if keys.count(k) > 1)


def test_every_word_asked_for_exists() -> None:
    asked: set[str] = set()
    for path in [*DASHBOARD.glob("templates/*.html"), *(p for p in DASHBOARD.glob("*.py") if p.name != "i18n.py")]:
        text = path.read_text()
        asked |= {key for key in re.findall(r"""\bt\(\s*["'](\w+)["']""", text) if not key.endswith("_")}
        for heading, message in re.findall(r"""PageError\(\s*\d+,\s*"(\w+)"(?:,\s*"(\w+)")?""", text):
            asked |= {heading, message} - {""}
    metrics = {m.model_fields["type"].default for m in get_args(KeyResult.model_fields["metric"].annotation)}
    rules = {r.model_fields["type"].default for r in get_args(get_args(HygieneRule)[0])}
    assert len(metrics) == 8 and len(rules) == 9
    asked |= {f"metric_{m}" for m in metrics} | {f"rule_{r}" for r in rules} | set(access.LOGIN_REASONS)
    asked |= {f"status_{s}" for s in (ON_TRACK, AT_RISK, OFF_TRACK, NOT_STARTED, NO_DATA, TOO_EARLY, ACHIEVED, MISSED)}
    asked |= {f"kam_{s}" for s in (MET, PARTLY, NOT_MET, NOT_ASSESSED)}
    asked |= {f"role_{r.value}" for r in Role} | {f"state_{s}" for s in ("planned", "running", "ended")}
    asked |= {f"source_{s}" for s in ("derived", "assessed")}
    asked |= {f"part_{p}" for p in ("counted", "numerator", "denominator", "pair")}
    assert not sorted(asked - set(i18n.EN))


def test_the_german_words_of_the_method() -> None:
    t = i18n.Translator("de")
    assert (t("status_on_track"), t("status_at_risk"), t("status_off_track")) == (
        "Im Plan",
        "Gefährdet",
        "Nicht im Plan",
    )
    assert t("key_results") == "Key Results" and t("check_in_title") == "Wöchentlicher Check-in"
    assert (
        t("forbidden_role", role="Sales Ops", have="Lesen")
        == "Dafür braucht es die Rolle Sales Ops; Ihr Token hat die Rolle Lesen."
    )


@pytest.mark.parametrize(
    ("asked", "remembered", "accept", "chosen"),
    [
        ("de", "en", "en", "de"),
        (None, "de", "en-US", "de"),
        ("fr", None, "de-CH, en;q=0.5", "de"),
        (None, None, "fr-FR, de;q=0.4, en;q=0.7", "en"),
        (None, None, "fr, de;q=0.3", "de"),
        (None, None, "de;q=0", "en"),
        (None, None, "garbage;q=x,,", "en"),
        (None, None, None, "en"),
    ],
    ids=["parameter", "cookie", "accept-language", "by-quality", "only-german-known", "refused", "garbage", "none"],
)
def test_the_language_is_chosen(asked: str | None, remembered: str | None, accept: str | None, chosen: str) -> None:
    assert i18n.choose(asked=asked, remembered=remembered, accept_language=accept) == chosen


def test_numbers_in_german() -> None:
    assert i18n.localize_number("6,495,400", "de") == "6.495.400"
    assert i18n.localize_number("3.5 h", "de") == "3,5 h" and i18n.localize_number("42%", "de") == "42 %"
    assert i18n.localize_number("6,495,400", "en") == "6,495,400"
