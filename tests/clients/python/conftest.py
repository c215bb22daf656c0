import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from relay import Relay  # noqa: E402


@pytest.fixture(scope="session")
def relay():
    r = Relay(secured=True)
    yield r
    r.stop()
