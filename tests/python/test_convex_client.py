"""The official Python client (`convex` on PyPI: `ConvexClient`, built on the Rust crate),
unmodified, against the real pulsebase binary serving tests/client_app.

What it does differently from the npm client, each pinned here:
- it opens its socket at `/api/sync` (no version segment) with `Convex-Client: python-<version>`;
- Python ints travel as floats (`number`); `ConvexInt64` is an int64;
- a plain error raises a bare `Exception` with the message; only a thrown object raises
  `ConvexError`, whose `.data` is that object;
- auth is a fixed token (`set_auth`, no callback): refresh by calling `set_auth` again before
  expiry; a token that expires gets an AuthError that closes the socket, and the client keeps
  reconnecting with it until `set_auth` gives a fresh one.
"""

from __future__ import annotations

from conftest import NOT_AN_ACTION, WAIT, Server, failure, until, within
from convex import ConvexClient, ConvexError, ConvexInt64


def connect(url: str) -> ConvexClient:
    with within(WAIT, "the client to start"):
        return ConvexClient(url)


def test_queries_and_mutations_carry_every_value_type(server: Server) -> None:
    client = connect(server.url)
    with within(WAIT, "send and list"):
        message_id = client.mutation("messages:send", {"channel": "values", "body": "hello"})
        assert isinstance(message_id, str) and message_id
        assert client.query("messages:list", {"channel": "values"}) == ["hello"]

    sent = {
        "int": 5,
        "float": 1.5,
        "int64": ConvexInt64(2**40),
        "bytes": b"\x00\x01\xff",
        "null": None,
        "bool": True,
        "array": [1, "a"],
        "object": {"nested": {"deep": 2}},
    }
    for function, call in (("values:echo", client.query), ("values:echoMutation", client.mutation)):
        with within(WAIT, function):
            back = call(function, sent)
        # Python ints become floats on the way out; ConvexInt64 stays an int64.
        assert back == {
            "int": 5.0,
            "float": 1.5,
            "int64": ConvexInt64(2**40),
            "bytes": b"\x00\x01\xff",
            "null": None,
            "bool": True,
            "array": [1.0, "a"],
            "object": {"nested": {"deep": 2.0}},
        }, function
        assert isinstance(back["int"], float)


def test_a_deployment_url_with_a_trailing_slash_works(server: Server) -> None:
    client = connect(server.url + "/")
    with within(WAIT, "a query"):
        assert client.query("messages:list", {"channel": "slash"}) == []


def test_a_subscription_receives_another_clients_write(server: Server) -> None:
    reader = connect(server.url)
    writer = connect(server.url)
    listed = reader.subscribe("messages:list", {"channel": "live"})
    until(listed, lambda v: v == [], "the empty channel")
    with within(WAIT, "two writes"):
        writer.mutation("messages:send", {"channel": "live", "body": "one"})
        writer.mutation("messages:send", {"channel": "live", "body": "two"})
    until(listed, lambda v: v == ["one", "two"], "both writes")

    # A query that starts throwing raises ConvexError from the subscription.
    count = reader.subscribe("messages:countBelow", {"channel": "live", "limit": 3})
    until(count, lambda v: v == 2.0, "a count of 2")
    with within(WAIT, "a third write"):
        writer.mutation("messages:send", {"channel": "live", "body": "three"})
    error = until(count, lambda v: isinstance(v, ConvexError), "the query to fail")
    assert error.data == {"code": "TOO_MANY", "count": ConvexInt64(3)}
    until(listed, lambda v: v == ["one", "two", "three"], "the other subscription to update")


def test_errors_reach_the_client_in_convex_shapes(server: Server) -> None:
    client = connect(server.url)

    # A thrown string: a bare Exception carrying the message and the script location.
    error = failure(lambda: client.mutation("errors:fail"), "errors:fail")
    assert type(error) is Exception, repr(error)
    assert str(error).startswith("Uncaught Error: boom\n    at functions/errors.rhai:"), str(error)

    # A thrown map: ConvexError with the map as .data, from queries and mutations.
    for function, call in (
        ("errors:notFound", client.query),
        ("errors:notFoundMutation", client.mutation),
    ):
        error = failure(lambda: call(function, {"id": "x"}), function)
        assert isinstance(error, ConvexError), repr(error)
        assert error.data == {"code": "NOT_FOUND", "id": "x"}
        assert str(error).startswith("Uncaught ConvexError"), str(error)

    # Argument validation names the path and both types (5 travels as 5.0).
    error = failure(
        lambda: client.mutation("messages:send", {"channel": 5, "body": "x"}), "bad args"
    )
    assert str(error) == "ArgumentValidationError: args.channel: expected string, found number 5.0"

    # Unknown and internal functions look the same to a client.
    for function in ("nope:nothing", "messages:purge"):
        error = failure(lambda: client.mutation(function, {"channel": "x"}), function)
        assert str(error).startswith(f"Could not find public function for '{function}'"), str(error)


def test_an_action_runs_as_the_caller_and_a_mutation_is_not_an_action(server: Server) -> None:
    client = connect(server.url)
    with within(WAIT, "an anonymous action"):
        assert client.action("actions:post", {"channel": "act", "body": "one"}) == {
            "count": 1.0,
            "by": "anonymous",
        }
    client.set_auth(server.token("actor"))
    with within(WAIT, "a signed-in action"):
        assert client.action("actions:post", {"channel": "act", "body": "two"}) == {
            "count": 2.0,
            "by": "actor",
        }
    error = failure(lambda: client.action("messages:send", {}), "a mutation called as an action")
    assert type(error) is Exception and str(error) == NOT_AN_ACTION, str(error)


def test_a_paginated_query_visits_every_document_once_in_order(server: Server) -> None:
    client = connect(server.url)
    bodies = [f"m{i}" for i in range(7)]
    with within(WAIT, "seven writes"):
        for body in bodies:
            client.mutation("messages:send", {"channel": "pages", "body": body})
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        with within(WAIT, "a page"):
            # numItems is a Python int: it travels as the float a `number` expects.
            page = client.query(
                "messages:page",
                {"channel": "pages", "paginationOpts": {"numItems": 2, "cursor": cursor}},
            )
        seen += [document["body"] for document in page["page"]]
        if page["isDone"]:
            break
        cursor = page["continueCursor"]
    assert seen == bodies


def test_set_auth_refreshes_on_the_live_socket_and_clear_auth_signs_out(server: Server) -> None:
    client = connect(server.url)
    whoami = client.subscribe("auth:whoami")
    until(whoami, lambda v: v is None, "an anonymous whoami")

    client.set_auth(server.token("py_user", name="Ada"))
    me = until(whoami, lambda v: v is not None and v["name"] == "Ada", "whoami as Ada")
    assert me["subject"] == "py_user"
    assert me["tokenIdentifier"] == f"{server.url}/dev-issuer|py_user"

    # Refreshing is calling set_auth again with the new token, on the same socket.
    client.set_auth(server.token("py_user", name="Ada Lovelace"))
    until(whoami, lambda v: v is not None and v["name"] == "Ada Lovelace", "the refreshed name")
    with within(WAIT, "a signed-in mutation"):
        client.mutation("messages:sendSigned", {"channel": "signed", "body": "hi"})

    client.clear_auth()
    until(whoami, lambda v: v is None, "whoami anonymous again")
    error = failure(
        lambda: client.mutation("messages:sendSigned", {"channel": "signed", "body": "x"}),
        "an anonymous sendSigned",
    )
    assert str(error).startswith("Uncaught Error: Unauthorized"), str(error)


def test_an_expired_token_is_refused_until_set_auth_gives_a_fresh_one(server: Server) -> None:
    client = connect(server.url)
    client.set_auth(server.token("short", ttl=3))
    whoami = client.subscribe("auth:whoami")
    until(whoami, lambda v: v is not None and v["subject"] == "short", "whoami as the user")
    # No refresh: at expiry the server sends AuthError and closes the socket (as Convex does);
    # the client reconnects with the same expired token, which is refused again.
    server.wait_for_log("access token expired without a refresh")
    # The client takes the new token only between two attempts of its reconnect loop (each
    # failed one backs off, up to 15 s), so it can take a few attempts.
    client.set_auth(server.token("short", name="Back"))
    until(whoami, lambda v: v is not None and v["name"] == "Back", "whoami as the user again", 120)


def test_after_a_server_restart_the_client_reconnects_with_its_subscription_and_auth(
    server: Server,
) -> None:
    client = connect(server.url)
    client.set_auth(server.token("restart_user"))
    listed = client.subscribe("messages:list", {"channel": "r"})
    until(listed, lambda v: v == [], "the empty channel")
    with within(WAIT, "a write before the restart"):
        client.mutation("messages:sendSigned", {"channel": "r", "body": "before"})
    until(listed, lambda v: v == ["before"], "the write before the restart")

    server.restart()

    other = connect(server.url)
    with within(WAIT, "a write after the restart"):
        other.mutation("messages:send", {"channel": "r", "body": "after"})
    until(listed, lambda v: v == ["before", "after"], "the subscription to resume", 40)
    # The same client's token was re-sent on its new socket.
    with within(40, "a signed-in mutation after the restart"):
        client.mutation("messages:sendSigned", {"channel": "r", "body": "own"})
    with within(WAIT, "whoami"):
        assert client.query("auth:whoami")["subject"] == "restart_user"
