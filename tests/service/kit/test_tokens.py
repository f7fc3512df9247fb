"""Tokens name the person's CRM e-mail when they have one: a mistyped address is refused when the token is made,
with what was wrong, and nothing is stored."""

from __future__ import annotations

import pytest
import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.kit.auth import ApiToken, Role, create_token, find_token


@pytest.mark.parametrize("email", ["mia.vogel", "mia vogel@sandbox.dev", "@sandbox.okrsync.dev", "mia@localhost", ""])
def test_a_token_with_a_malformed_e_mail_is_refused_and_not_stored(engine: Engine, email: str) -> None:
    with Session(engine) as session:
        with pytest.raises(ValueError, match="must be an e-mail address as the CRM user has it") as refused:
            create_token(session, name="Mia", role=Role.rep, email=email)
        assert repr(email) in str(refused.value)
        assert session.exec(sqlmodel.select(ApiToken)).all() == []


def test_a_rep_token_keeps_the_e_mail_trimmed_and_a_kam_token_needs_one(engine: Engine) -> None:
    with Session(engine) as session:
        row, token = create_token(session, name="Mia", role=Role.rep, email="  Mia.Vogel@sandbox.okrsync.dev ")
        assert row.email == "Mia.Vogel@sandbox.okrsync.dev"
        found = find_token(session, token)
        assert found is not None and found.role == "rep"
        assert create_token(session, name="viewer", role=Role.rep)[0].email is None  # a rep may have none
        with pytest.raises(ValueError, match="a kam token needs the KAM's CRM e-mail"):
            create_token(session, name="Katrin", role=Role.kam)
