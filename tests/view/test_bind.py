"""The viewer's socket: a free port on request, a clear error for a taken one."""

from __future__ import annotations

import pytest

from wsidist.errors import ConfigError
from wsidist.view.app import bind


def test_port_zero_binds_a_free_port_and_a_taken_port_is_named():
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0
        with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{port}.*--port"):
            bind("127.0.0.1", port)
    finally:
        sock.close()
