"""The Salesforce client decodes answers with orjson, and with simple-salesforce's own decoding what orjson refuses."""

from __future__ import annotations

import json
import math

import pytest
import requests

from connectors.salesforce.connector import _Salesforce


def _answer(body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = body
    response.encoding = "utf-8"
    return response


def _client() -> _Salesforce:
    return _Salesforce(instance_url="https://127.0.0.1:1", session_id="not-a-token", object_pairs_hook=dict)


@pytest.mark.parametrize(
    "body",
    [
        # a query page as Salesforce writes it: nested objects, nulls, booleans, numbers up to 18 digits, non-ASCII
        {
            "totalSize": 2,
            "done": False,
            "nextRecordsUrl": "/services/data/v62.0/query/01g-2000",
            "records": [
                {
                    "attributes": {"type": "Task", "url": "/services/data/v62.0/sobjects/Task/00T1"},
                    "Id": "00T1",
                    "Subject": "Rückruf – Angebot 📞",
                    "CallDurationInSeconds": 754,
                    "IsDeleted": False,
                    "WhoId": None,
                },
                {"attributes": {"type": "Opportunity"}, "Amount": 123456789012345678, "Probability": 12.5},
            ],
        },
    ],
)
def test_an_answer_decodes_to_what_json_gives(body: dict) -> None:
    text = json.dumps(body, ensure_ascii=False).encode()
    assert _client().parse_result_to_json(_answer(text)) == json.loads(text)


def test_what_orjson_refuses_goes_to_simple_salesforces_decoding() -> None:
    client = _client()
    assert math.isnan(client.parse_result_to_json(_answer(b'{"a": NaN}'))["a"])  # json accepts NaN, orjson does not
    assert client.parse_result_to_json(_answer(b'{"a": "\\ud800x"}')) == {"a": "\ud800x"}  # a lone surrogate
    with pytest.raises(requests.exceptions.JSONDecodeError):  # refused by both: the error simple-salesforce gives
        client.parse_result_to_json(_answer(b'{"a": '))
