"""SigV4 headers from the bindings, checked against botocore's SigV4Auth for
the same request, time and credentials."""

import datetime
from unittest import mock

import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import supa

FUNCTION_URL = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws"
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AT = datetime.datetime(2026, 11, 22, 8, 30, 15)
AT_UNIX = int(AT.replace(tzinfo=datetime.timezone.utc).timestamp())


def botocore_headers(method, url, headers, body, token, region, service):
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    signer = botocore.auth.SigV4Auth(Credentials(AKID, SECRET, token), service, region)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=AT):
        signer.add_auth(request)
    wanted = {"authorization", "x-amz-date", "x-amz-security-token"}
    return {k.lower(): v for k, v in request.headers.items() if k.lower() in wanted}


def supa_headers(method, url, headers, body, token, region, service):
    credentials = supa.AwsCredentials(access_key_id=AKID, secret_access_key=SECRET, session_token=token)
    return supa.sign_sigv4(method, url, dict(headers), body, credentials, region, service, AT_UNIX)


# Queries are given in AWS's canonical encoding, which botocore signs as
# written (it expects callers to have encoded them) and AWS recomputes.
CASES = [
    ("GET", f"{FUNCTION_URL}/rest/v1/todos", {}, b"", None),
    ("GET", f"{FUNCTION_URL}/rest/v1/todos?select=id%2Ctitle&order=id.desc&done=eq.false", {"Accept": "application/json"}, b"", None),
    (
        "POST",
        f"{FUNCTION_URL}/rest/v1/todos?columns=title",
        {
            "Content-Type": "application/json",
            "Prefer": "return=representation,   count=exact",
            "X-Client-Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
            "User-Agent": "supa-gateway/0.1",
            "Connection": "keep-alive",
        },
        b'[{"title":"write tests"}]',
        "IQoJb3JpZ2luX2VjEXAMPLE/TOKEN+==",
    ),
    ("PATCH", f"{FUNCTION_URL}/rest/v1/items?id=in.%281%2C2%29", {"X-Forwarded-Host": "api.example.com"}, b'{"done":true}', None),
    ("DELETE", f"{FUNCTION_URL}/rest/v1/a%20b/./c/../d/", {}, b"", None),
    ("GET", "http://127.0.0.1:9000/rest/v1/t?a=1&a=0&b=", {}, b"", "token"),
    ("HEAD", f"{FUNCTION_URL}/rest/v1/%C3%BCmlaut", {"X-Amz-Date": "stale", "Authorization": "Bearer old"}, b"", None),
]


@pytest.mark.parametrize("method, url, headers, body, token", CASES)
@pytest.mark.parametrize("region, service", [("eu-west-1", "lambda"), ("us-east-1", "execute-api")])
def test_signatures_equal_botocore(method, url, headers, body, token, region, service):
    ours = supa_headers(method, url, headers, body, token, region, service)
    theirs = botocore_headers(method, url, headers, body, token, region, service)
    assert ours == theirs
    assert ours["x-amz-date"] == "20261122T083015Z"
    assert ours["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/20261122/{region}/{service}/aws4_request")


def test_unencoded_queries_are_signed_as_aws_reencodes_them():
    raw = supa_headers("GET", f"{FUNCTION_URL}/rest/v1/t?select=*&name=like.a b", {}, b"", None, "eu-west-1", "lambda")
    encoded = botocore_headers("GET", f"{FUNCTION_URL}/rest/v1/t?select=%2A&name=like.a%20b", {}, b"", None, "eu-west-1", "lambda")
    assert raw == encoded


def test_unsignable_requests_raise():
    credentials = supa.AwsCredentials(access_key_id=AKID, secret_access_key=SECRET, session_token=None)
    with pytest.raises(supa.SupaError.Unsignable) as err:
        supa.sign_sigv4("GET", "/relative", {}, b"", credentials, "eu-west-1", "lambda", AT_UNIX)
    assert "not absolute" in str(err.value)
