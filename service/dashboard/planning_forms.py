"""The planning pages' forms as data: what a form says, turned into a mapping file's objective or key result (the
key-result builder takes only the fields, operators and values ``builder.options`` offers), and back for an edit.
Bad input raises ``FormProblem`` naming the field; nothing is stored then."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from mappings.config import KEY_PATTERN
from service.kit.errors import ServiceError

CONDITIONS = 3  # filter conditions the builder form offers
BUILT_METRICS = ("count", "sum")  # the metric types the form builds; others are edited in the file


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


def buildable(kr: dict[str, Any]) -> bool:
    """Whether the builder form can show this key result as it is (else it is edited in the file)."""
    found = kr.get("metric")
    metric: dict[str, Any] = found if isinstance(found, dict) else {}
    where = metric.get("where") or []
    return (
        metric.get("type") in BUILT_METRICS
        and len(where) <= CONDITIONS
        and all(isinstance(c, dict) and set(c) <= {"field", "op", "value"} for c in where)
        and set(metric) <= {"type", "of", "field", "where"}
        and set(kr) <= {"key", "title", "metric", "target", "baseline"}
    )


def kr_form_of(objective_key: str, kr: dict[str, Any] | None) -> dict[str, str]:
    """The builder form's values for a stored key result (or an empty one)."""
    form = {"objective": objective_key, "original": "", "key": "", "title": "", "metric": "count",
            "of": "activities", "sum_field": "", "target": "", "baseline": ""}  # fmt: skip
    if kr is not None:
        metric = kr.get("metric") or {}
        form.update(original=str(kr.get("key") or ""), key=str(kr.get("key") or ""), title=str(kr.get("title") or ""),
                    metric=str(metric.get("type") or "count"), of=str(metric.get("of") or "activities"),
                    sum_field=str(metric.get("field") or ""), target=figure_text(kr.get("target")),
                    baseline=figure_text(kr.get("baseline")))  # fmt: skip
        for n, condition in enumerate(metric.get("where") or [], start=1):
            value = condition.get("value")
            form[f"field_{n}"] = str(condition.get("field") or "")
            form[f"op_{n}"] = str(condition.get("op") or "eq")
            form[f"value_{n}"] = ", ".join(map(str, value)) if isinstance(value, list) else figure_text(value)
    return form


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


def key_result_of(form: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    """The key result the builder form describes, as in the mapping file; only what ``options`` offers is taken."""
    title = form.get("title", "").strip()
    if not title:
        raise FormProblem("key result title: must not be empty")
    if form.get("metric") not in BUILT_METRICS:
        raise FormProblem(
            f"metric type: {form.get('metric')!r} is not one the builder makes ({', '.join(BUILT_METRICS)})"
        )
    offered = {f["field"]: f for f in options["counted"].get(form.get("of", ""), [])}
    if not offered:
        raise FormProblem(f"counted record: {form.get('of')!r} is not one of {', '.join(options['counted'])}")
    metric: dict[str, Any] = {"type": form["metric"], "of": form["of"]}
    if form["metric"] == "sum":
        field = form.get("sum_field", "")
        if offered.get(field, {}).get("type") != "number" or "." in field:
            raise FormProblem(f"summed field: choose a number field of the {form['of']} (not {field!r})")
        metric["field"] = field
    where = []
    for n in range(1, CONDITIONS + 1):
        field, op, value = form.get(f"field_{n}", ""), form.get(f"op_{n}", "") or "eq", form.get(f"value_{n}", "")
        if not field:
            continue
        if field not in offered:
            raise FormProblem(f"condition {n}: the builder offers no field {field!r} for {form['of']}")
        if op not in offered[field]["ops"]:
            raise FormProblem(f"condition {n}: {field} cannot be compared with {op!r} (its operators: "
                              f"{', '.join(offered[field]['ops'])})")  # fmt: skip
        condition: dict[str, Any] = {"field": field, "op": op}
        if op in options["list_ops"]:
            condition["value"] = [v.strip() for v in value.split(",") if v.strip()]
        elif op not in options["no_value_ops"]:
            if not value.strip():
                raise FormProblem(f"condition {n}: {field} {op} needs a value")
            typed = offered[field]["type"]
            condition["value"] = number(value, f"condition {n} ({field})") if typed == "number" else value.strip()
        where.append(condition)
    if where:
        metric["where"] = where
    kr: dict[str, Any] = {"key": key_of(form.get("key", ""), title, "key result"), "title": title, "metric": metric}
    if form.get("baseline", "").strip():
        kr["baseline"] = number(form["baseline"], "baseline")
    kr["target"] = number(form.get("target", ""), "target") if form.get("target", "").strip() else None
    if kr["target"] is None:
        raise FormProblem("target: say how much the key result aims for (a number)")
    return kr


def builder_form(fields: dict[str, list[str]]) -> dict[str, str]:
    names = ["objective", "original", "key", "title", "metric", "of", "sum_field", "target", "baseline", "revision"]
    names += [f"{part}_{n}" for n in range(1, CONDITIONS + 1) for part in ("field", "op", "value")]
    return {n: (fields.get(n) or [""])[-1] for n in names}
