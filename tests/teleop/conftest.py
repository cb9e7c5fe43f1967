"""Real rclpy for the teleop tests: the same isolated-Context fixture as tests/nodes."""
import pytest

from tests.nodes.conftest import RosFixture   # sets the domain and the discovery range on import


@pytest.fixture
def ros():
    fixture = RosFixture()
    yield fixture
    fixture.close()
