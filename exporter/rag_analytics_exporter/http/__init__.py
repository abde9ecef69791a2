"""A small HTTP/1.x server on an asyncio loop in a thread of its own; it knows no route.

server.HttpServer accepts (plain or TLS), bounds requests in progress, checks basic auth off the
loop and calls a handler (method, path, headers) -> Response; connection.Connection speaks the
protocol for one client; request parses what the client sent; transport is the plain socket
transport; stats holds the counters and the rate-limited warnings.
"""
