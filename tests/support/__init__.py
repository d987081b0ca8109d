"""What the test modules share, one module per job; the fixtures built on it live in ``tests/conftest.py``.

- :mod:`~tests.support.wire`: raw HTTP to a running emulator (signed Identity calls, Bearer Chat calls).
- :mod:`~tests.support.clients`: one scenario through the sync and the async client; users and their clients.
- :mod:`~tests.support.tokens`: JWTs for tests (a fake one, the payload of a real one).
- :mod:`~tests.support.entra`: Entra ID access tokens (unsigned) and a static ``TokenCredential``.
- :mod:`~tests.support.events`: real-time event tests: actors, collecting events, sentinels.
- :mod:`~tests.support.relay`: a TCP relay whose connections a test can cut for real.
- :mod:`~tests.support.export`: the export tests' threads, expected rows and rewriting transport.
- :mod:`~tests.support.processes`: an emulator in a process of its own (``chatnb serve``, a child Python).
- :mod:`~tests.support.net`: free ports and raw HTTP/1.1 over a socket.
- :mod:`~tests.support.hostile`: a hostile HTTPS server that answers as a test scripts it.
- :mod:`~tests.support.kernel`: Python processes driven cell by cell; the ``chatnb`` command line.
- :mod:`~tests.support.jupyter`: JupyterLab, Chromium and a jupyter_client kernel for the browser tests.
- :mod:`~tests.support.widgets`: a stand-in browser for widget tests without a kernel.
- :mod:`~tests.support.logs`: the records a logger emits while a test runs.
- :mod:`~tests.support.waiting`: waiting on a condition (never on time).
"""

__all__: list[str] = []
