"""Helper modules under tests/ that assert get pytest's assertion messages, as the test modules do."""

import pytest

pytest.register_assert_rewrite("tests.checkpoint_labs")
