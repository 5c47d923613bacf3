"""Runs moto's server handling one request at a time.

moto's own `moto_server` serves requests on parallel threads without
serialising them, so two concurrent conditional writes can both pass their
condition. DynamoDB applies conditional writes and transactions atomically;
casebridge's exactly-once guarantees rest on that. Serving one request at a
time (HTTP/1.0, a connection per request) gives the tests the same guarantee.

Usage: python moto_serial.py HOST PORT
"""

import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app


class SerialRequestHandler(MotoRequestHandler):
    # HTTP/1.0: every request closes its connection, so one slow client never
    # holds the single worker.
    protocol_version = "HTTP/1.0"


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=SerialRequestHandler)


if __name__ == "__main__":
    main()
