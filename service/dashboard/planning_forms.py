"""The planning pages' forms as data: what a form says, turned into a mapping file's objective or key result (the
key-result builder takes only the fields, operators and values ``builder.options`` offers), and back for an edit.
Bad input raises ``FormProblem`` naming the field; nothing is stored then."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pydantic import TypeAdapter, ValidationError

from mappings.config import KEY_PATTERN, Metric
from service.kit.errors import ServiceError

CONDITIONS = 3  # filter conditions the builder form offers (per filter)
# the metric types the form builds, and the settings of each it shows; others are edited in the file
SETTINGS: dict[str, set[str]] = {
    "count": {"type", "of", "where"},
    "sum": {"type", "of", "field", "where"},
    "ratio": {"type", "numerator", "denominator"},
    "response_time": {"type", "statistic", "percentile", "within_hours", "hours", "match", "inbound"},
    "speed_to_lead": {"type", "statistic", "percentile", "within_hours", "hours", "leads"},
    "hygiene_score": {"type", "rules"},
    "kam_criteria": {"type", "min_score"},
    "manual": {"type", "unit"},
}
BUILT_METRICS = tuple(SETTINGS)
FILTER_OF = {"response_time": "inbound", "speed_to_lead": "leads"}  # the filter the condition rows fill
STATISTICS = ("median", "p90", "percentile", "max", "share_within")
SHARES = ("ratio", "hygiene_score", "kam_criteria")  # their value, target and baseline are fractions 0–1
FORM_NAMES = (
    "objective", "original", "key", "title", "metric", "of", "sum_field", "den_of", "statistic", "percentile",
    "within_hours", "hours", "match", "unit", "rules", "min_score", "target", "baseline",
    *(f"{prefix}{part}_{n}" for prefix in ("", "den_") for n in range(1, CONDITIONS + 1)
      for part in ("field", "op", "value")),
)  # fmt: skip


_METRIC: TypeAdapter[Any] = TypeAdapter(Metric)


class FormProblem(ServiceError):
    """Bad input in a form, named by field: nothing is saved, the form keeps what was typed."""

    status = 422


def members(text: str) -> list[dict[str, str]]:
    """``e-mail, name`` per line (the name may be left out)."""
    found = []
    for line in text.splitlines():
        email, _, name = (part.strip() for part in line.partition(","))
        if email:
            found.append({"email": email, "name": name or email.split("@")[0]})
    return found


def day(form: dict[str, str], name: str) -> date:
    try:
        return date.fromisoformat(form[name].strip())
    except ValueError:
        raise FormProblem(f"{name}: {form[name]!r} is not a day (YYYY-MM-DD)") from None


def objectives(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in content.get("objectives") or [] if isinstance(o, dict)]


def find_kr(content: dict[str, Any], kr_key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    for objective in objectives(content):
        for kr in objective.get("key_results") or []:
            if isinstance(kr, dict) and kr.get("key") == kr_key:
                return objective, kr
    return None


def _conditions_ok(where: Any) -> bool:
    return (
        isinstance(where, list)
        and len(where) <= CONDITIONS
        and all(isinstance(c, dict) and set(c) <= {"field", "op", "value"} for c in where)
    )


def _count_ok(part: Any) -> bool:
    return (
        isinstance(part, dict)
        and part.get("type") == "count"
        and set(part) <= {"type", "of", "where"}
        and _conditions_ok(part.get("where") or [])
    )


def _direction_ok(kr: dict[str, Any]) -> bool:
    """The form writes ``direction: lower`` exactly when the target lies below the baseline (as the file needs)."""
    if "direction" not in kr:
        return True
    try:
        below = float(kr["target"]) < float(kr.get("baseline") or 0)
    except (KeyError, TypeError, ValueError):
        return False
    return kr["direction"] == ("lower" if below else "higher")


def buildable(kr: dict[str, Any]) -> bool:
    """Whether the builder form can show this key result as it is (else it is edited in the file)."""
    found = kr.get("metric")
    metric: dict[str, Any] = found if isinstance(found, dict) else {}
    kind = metric.get("type")
    if kind not in BUILT_METRICS or not set(kr) <= {"key", "title", "metric", "target", "baseline", "direction"}:
        return False
    if not _direction_ok(kr) or not set(metric) <= SETTINGS[kind]:
        return False
    if kind == "ratio":
        return _count_ok(metric.get("numerator")) and _count_ok(metric.get("denominator"))
    if kind == "hygiene_score":
        return metric.get("rules") is None or isinstance(metric.get("rules"), list)
    return _conditions_ok(metric.get(FILTER_OF.get(kind, "where")) or [])


def condition_record(form: dict[str, str]) -> str:
    """The counted record whose fields the condition rows offer: a response time filters the customer's inquiry
    (an activity), speed to lead the leads, the others their counted record."""
    return {"response_time": "activities", "speed_to_lead": "leads"}.get(form.get("metric", ""), form.get("of", ""))


def _condition_form(form: dict[str, str], where: Any, prefix: str = "") -> None:
    for n, condition in enumerate(where if isinstance(where, list) else [], start=1):
        value = condition.get("value")
        form[f"{prefix}field_{n}"] = str(condition.get("field") or "")
        form[f"{prefix}op_{n}"] = str(condition.get("op") or "eq")
        form[f"{prefix}value_{n}"] = ", ".join(map(str, value)) if isinstance(value, list) else form_number(value)


def kr_form_of(objective_key: str, kr: dict[str, Any] | None) -> dict[str, str]:
    """The builder form's values for a stored key result (or an empty one)."""
    form = {n: "" for n in FORM_NAMES}
    form.update(objective=objective_key, metric="count", of="activities", den_of="activities")
    if kr is None:
        return form
    metric = kr.get("metric") if isinstance(kr.get("metric"), dict) else {}
    assert isinstance(metric, dict)
    kind = str(metric.get("type") or "count")
    key, title = str(kr.get("key") or ""), str(kr.get("title") or "")
    form.update(original=key, key=key, title=title, metric=kind, target=form_number(kr.get("target")),
                baseline=form_number(kr.get("baseline")))  # fmt: skip
    if kind == "ratio":
        numerator, denominator = metric.get("numerator") or {}, metric.get("denominator") or {}
        form.update(of=str(numerator.get("of") or "activities"), den_of=str(denominator.get("of") or "activities"))
        _condition_form(form, numerator.get("where"))
        _condition_form(form, denominator.get("where"), "den_")
        return form
    form.update(of=str(metric.get("of") or condition_record({"metric": kind}) or "activities"),
                sum_field=str(metric.get("field") or ""), statistic=str(metric.get("statistic") or ""),
                percentile=form_number(metric.get("percentile")), within_hours=form_number(metric.get("within_hours")),
                hours=str(metric.get("hours") or ""), match=str(metric.get("match") or ""),
                unit=str(metric.get("unit") or ""), min_score=form_number(metric.get("min_score")),
                rules=", ".join(map(str, metric.get("rules") or [])))  # fmt: skip
    _condition_form(form, metric.get(FILTER_OF.get(kind, "where")))
    return form


def form_number(value: Any) -> str:
    """A stored number as the form shows it for an edit: every digit kept, so saving again stores the same."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return figure_text(value)


def figure_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.2f}".rstrip("0")
    return str(value)


def key_of(typed: str, title: str, what: str) -> str:
    """The typed key, or one made from the title (lower case, digits, -)."""
    key = typed.strip() or re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:64]
    if not re.match(KEY_PATTERN, key):
        raise FormProblem(f"{what} key: {key!r} is not a key (lower-case letters, digits, - and _; at most 64)")
    return key


def number(text: str, what: str) -> float | int:
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        raise FormProblem(f"{what}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise FormProblem(f"{what}: {text!r} is not a number")
    return int(value) if value.is_integer() else value


def sections(content: dict[str, Any]) -> dict[str, Any]:
    """What of the draft the builder depends on: the team's calendar, the hygiene rules' keys, a kam section."""
    team = content.get("team") if isinstance(content.get("team"), dict) else {}
    hygiene = content.get("hygiene") if isinstance(content.get("hygiene"), dict) else {}
    rules = [r for r in (hygiene or {}).get("rules") or [] if isinstance(r, dict)]
    return {
        "calendar": bool((team or {}).get("calendar")),
        "rules": [str(r.get("name") or r.get("type")) for r in rules],
        "kam": isinstance(content.get("kam"), dict),
    }


def _conditions(
    form: dict[str, str], options: dict[str, Any], record: str, *, prefix: str = "", label: str = "condition"
) -> list[dict[str, Any]]:
    offered = {f["field"]: f for f in options["counted"].get(record, [])}
    if not offered:
        raise FormProblem(f"counted record: {record!r} is not one of {', '.join(options['counted'])}")
    where = []
    for n in range(1, CONDITIONS + 1):
        field = form.get(f"{prefix}field_{n}", "")
        op, value = form.get(f"{prefix}op_{n}", "") or "eq", form.get(f"{prefix}value_{n}", "")
        if not field:
            continue
        if field not in offered:
            raise FormProblem(f"{label} {n}: the builder offers no field {field!r} for {record}")
        if op not in offered[field]["ops"]:
            raise FormProblem(f"{label} {n}: {field} cannot be compared with {op!r} (its operators: "
                              f"{', '.join(offered[field]['ops'])})")  # fmt: skip
        condition: dict[str, Any] = {"field": field, "op": op}
        if op in options["list_ops"]:
            condition["value"] = [v.strip() for v in value.split(",") if v.strip()]
        elif op not in options["no_value_ops"]:
            if not value.strip():
                raise FormProblem(f"{label} {n}: {field} {op} needs a value")
            typed = offered[field]["type"]
            condition["value"] = number(value, f"{label} {n} ({field})") if typed == "number" else value.strip()
        where.append(condition)
    return where


def _count(form: dict[str, str], options: dict[str, Any], *, prefix: str = "", label: str) -> dict[str, Any]:
    record = form.get(f"{prefix}of", "")
    part: dict[str, Any] = {"type": "count", "of": record}
    where = _conditions(form, options, record, prefix=prefix, label=label)
    if where:
        part["where"] = where
    return part


def _wait(form: dict[str, str], options: dict[str, Any], kind: str, found: dict[str, Any]) -> dict[str, Any]:
    statistic = form.get("statistic", "")
    if statistic not in STATISTICS:
        raise FormProblem(f"statistic: choose one of {', '.join(STATISTICS)} (not {statistic!r})")
    metric: dict[str, Any] = {"type": kind, "statistic": statistic}
    if statistic == "percentile":
        if not form.get("percentile", "").strip():
            raise FormProblem("percentile: statistic percentile needs the percentile, a number between 0 and 100")
        percentile = number(form["percentile"], "percentile")
        if not 0 < percentile < 100:
            raise FormProblem(f"percentile: {form['percentile'].strip()} is outside 0–100 (e.g. 75 or 95)")
        metric["percentile"] = percentile
    if statistic == "share_within":
        if not form.get("within_hours", "").strip():
            raise FormProblem("within hours: statistic share_within needs the limit in hours (e.g. 4)")
        within = number(form["within_hours"], "within hours")
        if within <= 0:
            raise FormProblem(f"within hours: {form['within_hours'].strip()} must be above 0")
        metric["within_hours"] = within
    hours = form.get("hours", "") or "wall_clock"
    if hours not in ("wall_clock", "business"):
        raise FormProblem(f"hours counted: wall_clock or business (not {hours!r})")
    if hours == "business":
        if not found["calendar"]:
            raise FormProblem("hours counted: business hours need the team's calendar (team.calendar in the mapping"
                              " file) and this draft's team has none: count wall-clock hours")  # fmt: skip
        metric["hours"] = "business"
    if kind == "response_time":
        match = form.get("match", "") or "account"
        if match not in ("account", "contact"):
            raise FormProblem(f"answered on: account or contact (not {match!r})")
        if match == "contact":
            metric["match"] = "contact"
    label = "inquiry condition" if kind == "response_time" else "lead condition"
    where = _conditions(form, options, condition_record({"metric": kind}), label=label)
    if where:
        metric[FILTER_OF[kind]] = where
    return metric


def _metric(form: dict[str, str], options: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    kind = form.get("metric", "")
    if kind in ("count", "sum"):
        metric = _count(form, options, label="condition")
        metric["type"] = kind
        if kind == "sum":
            offered = {f["field"]: f for f in options["counted"].get(form["of"], [])}
            field = form.get("sum_field", "")
            if offered.get(field, {}).get("type") != "number" or "." in field:
                raise FormProblem(f"summed field: choose a number field of the {form['of']} (not {field!r})")
            metric = {"type": "sum", "of": form["of"], "field": field, **{k: v for k, v in metric.items()
                                                                           if k == "where"}}  # fmt: skip
        return metric
    if kind == "ratio":
        return {"type": "ratio", "numerator": _count(form, options, label="numerator condition"),
                "denominator": _count(form, options, prefix="den_", label="denominator condition")}  # fmt: skip
    if kind in FILTER_OF:
        return _wait(form, options, kind, found)
    if kind == "manual":
        unit = form.get("unit", "").strip()
        return {"type": "manual", "unit": unit} if unit else {"type": "manual"}
    if kind == "hygiene_score":
        if not found["rules"]:
            raise FormProblem("metric type: hygiene_score needs the hygiene rules of the mapping file's hygiene"
                              " section, and this draft has none")  # fmt: skip
        rules = [r.strip() for r in form.get("rules", "").split(",") if r.strip()]
        for rule in rules:
            if rule not in found["rules"]:
                raise FormProblem(f"hygiene rules: {rule!r} is not a rule of this draft ({', '.join(found['rules'])})")
        return {"type": "hygiene_score", "rules": rules} if rules else {"type": "hygiene_score"}
    if kind == "kam_criteria":
        if not found["kam"]:
            raise FormProblem("metric type: kam_criteria needs the key accounts and criteria of the mapping file's"
                              " kam section, and this draft has none")  # fmt: skip
        if not form.get("min_score", "").strip():
            return {"type": "kam_criteria"}
        min_score = share(form["min_score"], "account score counted as met")
        if min_score <= 0:
            raise FormProblem(f"account score counted as met: {form['min_score'].strip()} must be above 0")
        return {"type": "kam_criteria", "min_score": min_score}
    raise FormProblem(f"metric type: {kind!r} is not one the builder makes ({', '.join(BUILT_METRICS)})")


def share(text: str, what: str) -> float | int:
    """A fraction 0–1, typed as one (0.8) or as a percentage (80 %)."""
    stripped = text.strip()
    value = number(stripped[:-1], what) / 100 if stripped.endswith("%") else number(stripped, what)
    if not 0 <= value <= 1:
        raise FormProblem(f"{what}: {stripped} is not a share: type a fraction 0–1 (0.8) or a percentage (80 %)")
    return int(value) if float(value).is_integer() else round(value, 12)


def key_result_of(
    form: dict[str, str], options: dict[str, Any], content: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The key result the builder form describes, as in the mapping file; only what ``options`` offers is taken."""
    title = form.get("title", "").strip()
    if not title:
        raise FormProblem("key result title: must not be empty")
    metric = _metric(form, options, sections(content or {}))
    try:  # the mapping file's own checks of the metric, should the form have let something through
        _METRIC.validate_python(metric)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"] if p not in BUILT_METRICS)
        raise FormProblem(f"metric {place}: {first['msg']}".replace(" : ", ": ")) from None
    kr: dict[str, Any] = {"key": key_of(form.get("key", ""), title, "key result"), "title": title, "metric": metric}
    shares = metric["type"] in SHARES or metric.get("statistic") == "share_within"
    read = share if shares else number
    if form.get("baseline", "").strip():
        kr["baseline"] = read(form["baseline"], "baseline")
    if not form.get("target", "").strip():
        raise FormProblem("target: say how much the key result aims for (a number)")
    kr["target"] = read(form["target"], "target")
    if kr["target"] < kr.get("baseline", 0):  # lower is better (a response time): the file says so
        kr["direction"] = "lower"
    return kr


def builder_form(fields: dict[str, list[str]]) -> dict[str, str]:
    form = {n: (fields.get(n) or [""])[-1] for n in (*FORM_NAMES, "revision")}
    form["den_of"] = form["den_of"] or form["of"]  # just switched to ratio: the denominator's rows need a record
    if len(fields.get("rules") or []) > 1:  # the rules' checkboxes: one value each
        form["rules"] = ", ".join(v for v in fields["rules"] if v)
    return form
