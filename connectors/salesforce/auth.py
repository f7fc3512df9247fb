"""OAuth 2.0 token requests against a Salesforce org.

okrsync asks for tokens itself (password, client credentials or JWT bearer grant) instead of simple-salesforce's
SOAP login, so that one code path serves every auth mode, a configurable login URL works (including the sandbox CRM
on loopback) and an expired session can be renewed by the connector.
See https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_flows.htm
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
import requests

from connectors.errors import AuthenticationError, ConfigurationError, UnreachableError
from connectors.salesforce.config import SalesforceConfig


@dataclass(frozen=True)
class Token:
    access_token: str
    instance_url: str

    def __repr__(self) -> str:  # never print the token
        return f"Token(instance_url={self.instance_url!r}, access_token=***)"


def can_renew(config: SalesforceConfig) -> bool:
    return config.effective_auth_mode() != "access_token"


def fetch_token(config: SalesforceConfig, session: requests.Session) -> Token:
    """Get an access token for the configured auth mode; raise a FatalError that says what to fix."""
    mode = config.effective_auth_mode()
    if mode == "access_token":
        assert config.access_token is not None and config.instance_url
        return Token(config.access_token.get_secret_value(), config.instance_url)

    form: dict[str, str] = {}
    if mode == "password":
        assert config.consumer_secret and config.password and config.username and config.consumer_key
        secret = config.password.get_secret_value()
        if config.security_token:
            secret += config.security_token.get_secret_value()
        form = {
            "grant_type": "password",
            "client_id": config.consumer_key,
            "client_secret": config.consumer_secret.get_secret_value(),
            "username": config.username,
            "password": secret,
        }
    elif mode == "client_credentials":
        assert config.consumer_secret and config.consumer_key
        form = {
            "grant_type": "client_credentials",
            "client_id": config.consumer_key,
            "client_secret": config.consumer_secret.get_secret_value(),
        }
    else:  # jwt bearer: https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
        assert config.jwt_private_key_file is not None
        try:
            key = config.jwt_private_key_file.read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the JWT private key {config.jwt_private_key_file}: {exc.strerror}"
            ) from None
        claims = {
            "iss": config.consumer_key,
            "sub": config.username,
            "aud": config.login_url.rstrip("/"),
            "exp": int(time.time()) + 180,
        }
        form = {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": jwt.encode(claims, key, algorithm="RS256"),
        }

    url = config.login_url.rstrip("/") + "/services/oauth2/token"
    try:
        answer = session.post(url, data=form, timeout=config.timeout_seconds)
    except requests.exceptions.SSLError:
        raise ConfigurationError(
            f"TLS verification failed for {url}: set OKRSYNC_SALESFORCE__CA_BUNDLE to the CA that signed it"
        ) from None
    except requests.RequestException as exc:
        raise UnreachableError(f"Salesforce login at {url} did not answer ({type(exc).__name__})") from None
    if answer.status_code != 200:
        try:
            body = answer.json()
            reason = f"{body.get('error')}: {body.get('error_description')}"
        except ValueError:
            reason = f"HTTP {answer.status_code}"
        who = config.username or config.consumer_key
        raise AuthenticationError(
            f"Salesforce refused the {mode} login for {who} ({reason}) — check the connected app's consumer key"
            f" and secret, the user's password and security token, or the JWT certificate"
        )
    body = answer.json()
    return Token(body["access_token"], config.instance_url or body["instance_url"])
