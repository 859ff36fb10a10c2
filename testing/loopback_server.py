"""The base of the test kit's local servers (QALITA, dbt Cloud): a werkzeug server on loopback."""

from __future__ import annotations

from pytest_httpserver.httpserver import HTTPServerBase


class LoopbackServer(HTTPServerBase):
    # serve_forever polls for shutdown every 0.5 s by default, which every stop() then waits out:
    # with a server per test that is most of the unit layer's time.
    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.02)
