"""The Python package's HTTP client (`convex.http_client.ConvexHttpClient`), unmodified,
against the real pulsebase binary serving tests/client_app.

What it does differently from the npm ConvexHttpClient, each pinned here:
- it sends `args` as a bare object, not the npm client's one-element array;
- it raises ConvexError whenever the answer holds `errorData`, so a plain error must come
  without that key (it then raises ConvexExecutionError with the message);
- a ConvexError's message is the fixed text "Convex error" (the data is in `.data`);
- a refused token (HTTP 401) raises a bare Exception "401 <code>: <message>".
"""

from __future__ import annotations

from conftest import NOT_AN_ACTION, WAIT, Server, failure, within
from convex import ConvexError, ConvexInt64
from convex.http_client import ConvexExecutionError, ConvexHttpClient


def test_queries_mutations_and_pagination(server: Server) -> None:
    client = ConvexHttpClient(server.url)
    with within(WAIT, "calls"):
        for i in range(5):
            assert client.mutation("messages:send", {"channel": "h", "body": f"b{i}"})
        assert client.query("messages:list", {"channel": "h"}) == [f"b{i}" for i in range(5)]
        assert client.query("values:echo", {"n": 1, "big": ConvexInt64(7), "b": b"\x01"}) == {
            "n": 1.0,
            "big": ConvexInt64(7),
            "b": b"\x01",
        }
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = client.query(
                "messages:page", {"channel": "h", "paginationOpts": {"numItems": 2, "cursor": cursor}}
            )
            seen += [document["body"] for document in page["page"]]
            if page["isDone"]:
                break
            cursor = page["continueCursor"]
        assert seen == [f"b{i}" for i in range(5)]


def test_errors_and_actions(server: Server) -> None:
    client = ConvexHttpClient(server.url)
    error = failure(lambda: client.mutation("errors:fail"), "errors:fail")
    assert isinstance(error, ConvexExecutionError), repr(error)
    assert str(error).startswith("Uncaught Error: boom"), str(error)

    error = failure(lambda: client.query("errors:notFound", {"id": "x"}), "errors:notFound")
    assert isinstance(error, ConvexError), repr(error)
    assert error.data == {"code": "NOT_FOUND", "id": "x"}
    assert str(error) == "Convex error"

    error = failure(lambda: client.mutation("messages:send", {"channel": 5, "body": "x"}), "bad args")
    assert isinstance(error, ConvexExecutionError), repr(error)
    assert str(error) == "ArgumentValidationError: args.channel: expected string, found number 5.0"

    with within(WAIT, "an action"):
        assert client.action("actions:post", {"channel": "http-act", "body": "x"}) == {
            "count": 1.0,
            "by": "anonymous",
        }
    error = failure(lambda: client.action("messages:send", {}), "a mutation called as an action")
    assert isinstance(error, ConvexExecutionError) and str(error) == NOT_AN_ACTION, str(error)


def test_set_auth_per_request_refresh_and_refused_tokens(server: Server) -> None:
    client = ConvexHttpClient(server.url)
    with within(WAIT, "an anonymous whoami"):
        assert client.query("auth:whoami") is None
    client.set_auth(server.token("http_user", name="Ada"))
    with within(WAIT, "whoami as Ada"):
        assert client.query("auth:whoami")["name"] == "Ada"
        client.mutation("messages:sendSigned", {"channel": "h", "body": "signed"})
    # Each request carries the current token: a refresh is set_auth with the new one.
    client.set_auth(server.token("http_user", name="Ada Lovelace"))
    with within(WAIT, "whoami refreshed"):
        assert client.query("auth:whoami")["name"] == "Ada Lovelace"

    client.set_auth("not-a-jwt")
    error = failure(lambda: client.query("auth:whoami"), "a refused token")
    assert type(error) is Exception, repr(error)
    assert str(error).startswith("401 InvalidAuthHeader: Could not parse JWT"), str(error)

    client.clear_auth()
    with within(WAIT, "an anonymous whoami again"):
        assert client.query("auth:whoami") is None
