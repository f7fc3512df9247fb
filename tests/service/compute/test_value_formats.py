"""How values read: money compact with its currency (€16.4M beside a title "€6M", with the exact figure kept for
the key result's page), other units after the number, changes of shares in percentage points."""

from __future__ import annotations

import pytest

from mappings.config import CountMetric, ManualMetric, RatioMetric, SumMetric
from service.compute.report import format_change, format_exact, format_value

EUR = SumMetric(of="opportunities", field="amount", unit="EUR")
RATIO = RatioMetric(
    numerator=CountMetric(of="opportunities"), denominator=CountMetric(of="activities")
)  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "value", "shown", "exact"),
    [
        (EUR, 16_355_900, "€16.4M", "16,355,900 EUR"),
        (EUR, 6_000_000, "€6M", "6,000,000 EUR"),
        (EUR, 401_500, "€401.5k", "401,500 EUR"),
        (EUR, 9_999, "€9,999", None),  # below 10,000 the figure is exact
        (EUR, 950, "€950", None),
        (EUR, -12_000, "−€12k", "-12,000 EUR"),
        (EUR, 2_400_000_000, "€2.4B", "2,400,000,000 EUR"),
        (SumMetric(of="opportunities", field="amount", unit="CHF"), 2_500_000, "CHF 2.5M", "2,500,000 CHF"),
        (SumMetric(of="opportunities", field="amount", unit="USD"), 75_000, "$75k", "75,000 USD"),
        (SumMetric(of="opportunities", field="seats", unit="seats"), 2_500, "2,500 seats", None),
        (SumMetric(of="opportunities", field="amount"), 16_355_900, "16,355,900", None),  # no unit: as before
        (ManualMetric(unit="NPS"), 34, "34", None),
    ],
)
def test_money_is_compact_with_its_currency_and_the_exact_figure_is_kept(
    metric: object, value: float, shown: str, exact: str | None
) -> None:
    assert format_value(metric, value) == shown
    assert format_exact(metric, value) == exact


def test_a_change_of_a_share_is_in_percentage_points_and_anything_else_in_its_own_unit() -> None:
    assert format_change(RATIO, -0.04) == "−4 pp" and format_change(RATIO, 0.06) == "+6 pp"
    assert format_change(EUR, 1_250_000) == "+€1.2M" and format_change(EUR, -500) == "−€500"
    assert format_change(CountMetric(of="activities"), 12) == "+12" and format_change(EUR, None) == "–"
