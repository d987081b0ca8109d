"""chatnb's test suite: ``tests.support`` holds what the test modules share."""
