import pytest

from connectors.sandbox.soql import SoqlError, parse, run_query

RECORDS = [
    {
        "Id": "a1",
        "Name": "Acme",
        "StageName": "Closed Won",
        "Amount": 500.0,
        "IsWon": True,
        "CloseDate": "2026-07-15",
        "NextStep": None,
        "CreatedDate": "2026-07-01T09:30:00.000+0000",
    },
    {
        "Id": "a2",
        "Name": "beta",
        "StageName": "Prospecting",
        "Amount": None,
        "IsWon": False,
        "CloseDate": "2026-08-01",
        "NextStep": "Call",
        "CreatedDate": "2026-07-01T10:00:00.000+0000",
    },
    {
        "Id": "a3",
        "Name": "O'Brien",
        "StageName": "Negotiation/Review",
        "Amount": 100.0,
        "IsWon": False,
        "CloseDate": "2026-06-30",
        "NextStep": "Send",
        "CreatedDate": "2026-06-30T23:59:59.000+0000",
    },
]


@pytest.mark.parametrize(
    ("soql", "expected_ids"),
    [
        ("SELECT Id FROM Opportunity", ["a1", "a2", "a3"]),
        ("select id from opportunity where amount > 200", ["a1"]),
        ("SELECT Id FROM Opportunity WHERE Amount = null", ["a2"]),
        ("SELECT Id FROM Opportunity WHERE Amount != null", ["a1", "a3"]),
        ("SELECT Id FROM Opportunity WHERE Amount < 200 OR IsWon = true", ["a1", "a3"]),
        ("SELECT Id FROM Opportunity WHERE (Amount < 200 OR IsWon = TRUE) AND NOT Name = 'acme'", ["a3"]),
        ("SELECT Id FROM Opportunity WHERE Name = 'O\\'Brien'", ["a3"]),
        ("SELECT Id FROM Opportunity WHERE StageName IN ('Closed Won', 'prospecting')", ["a1", "a2"]),
        ("SELECT Id FROM Opportunity WHERE StageName NOT IN ('Closed Won')", ["a2", "a3"]),
        ("SELECT Id FROM Opportunity WHERE CloseDate >= 2026-07-01", ["a1", "a2"]),
        ("SELECT Id FROM Opportunity WHERE CreatedDate > 2026-07-01T09:30:00Z", ["a2"]),
        ("SELECT Id FROM Opportunity WHERE CreatedDate >= 2026-07-01T09:30:00.000Z", ["a1", "a2"]),
        ("SELECT Id FROM Opportunity WHERE CreatedDate < 2026-07-01T11:30:00+02:00", ["a3"]),
        ("SELECT Id FROM Opportunity WHERE CreatedDate <= 2026-07-01T00:00:00+00:00", ["a3"]),
        ("SELECT Id FROM Opportunity ORDER BY Amount", ["a2", "a3", "a1"]),
        ("SELECT Id FROM Opportunity ORDER BY Amount DESC", ["a1", "a3", "a2"]),
        ("SELECT Id FROM Opportunity ORDER BY Amount ASC NULLS LAST", ["a3", "a1", "a2"]),
        ("SELECT Id FROM Opportunity ORDER BY IsWon, Name DESC", ["a3", "a2", "a1"]),
        ("SELECT Id FROM Opportunity ORDER BY Name LIMIT 2", ["a1", "a2"]),
        ("SELECT Id FROM Opportunity WHERE Amount <> 500 AND Amount >= 100.0", ["a3"]),
        ("SELECT Id FROM Opportunity WHERE Id > 'a1' ORDER BY Id DESC", ["a3", "a2"]),
    ],
    ids=[
        "all",
        "lowercase-keywords-and-fields",
        "null",
        "not-null",
        "or",
        "parens-and-not",
        "escaped-quote",
        "in-case-insensitive",
        "not-in",
        "date-literal",
        "datetime-z",
        "datetime-ms-z",
        "datetime-offset",
        "datetime-offset-utc",
        "nulls-first-asc",
        "nulls-last-desc",
        "nulls-last-explicit",
        "multi-key-order",
        "limit",
        "not-equal-alias",
        "keyset-on-id",
    ],
)
def test_where_order_limit(soql: str, expected_ids: list[str]) -> None:
    assert [row["Id"] for row in run_query(soql, RECORDS)] == expected_ids


def test_response_uses_schema_casing_and_only_selected_fields() -> None:
    rows = run_query("select NAME, amount from OPPORTUNITY where id = 'a1'", RECORDS)
    assert rows == [{"Name": "Acme", "Amount": 500.0}]


@pytest.mark.parametrize(
    ("soql", "error_code", "message_part"),
    [
        ("SELECT Id, Foo__c FROM Opportunity", "INVALID_FIELD", "No such column 'Foo__c' on entity 'Opportunity'"),
        ("SELECT Id FROM Opportunity WHERE Bar = 1", "INVALID_FIELD", "No such column 'Bar'"),
        ("SELECT Id FROM Opportunity ORDER BY Baz", "INVALID_FIELD", "No such column 'Baz'"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE", "sObject type 'Widget__c' is not supported"),
        ("SELECT IsDeleted FROM User", "INVALID_FIELD", "No such column 'IsDeleted' on entity 'User'"),
        ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY", "unexpected end"),
        ("SELECT Id FROM Opportunity WHERE (Amount > 1", "MALFORMED_QUERY", "expecting ')'"),
        ("SELECT Id Opportunity", "MALFORMED_QUERY", "expecting FROM"),
        ("SELECT Id FROM Opportunity LIMIT x", "MALFORMED_QUERY", "expecting a number"),
        ("SELECT Id FROM Opportunity WHERE Amount = 'x'", "INVALID_FIELD", "Amount"),
        ("SELECT Id FROM Opportunity WHERE Name = 'open", "MALFORMED_QUERY", "unexpected token"),
    ],
    ids=[
        "unknown-field",
        "unknown-where-field",
        "unknown-order-field",
        "unknown-object",
        "user-has-no-isdeleted",
        "dangling-where",
        "unclosed-paren",
        "missing-from",
        "bad-limit",
        "wrong-literal-type",
        "unclosed-string",
    ],
)
def test_errors(soql: str, error_code: str, message_part: str) -> None:
    with pytest.raises(SoqlError) as raised:
        parse(soql)
    assert raised.value.error_code == error_code
    assert message_part in raised.value.message
