"""The container test drives Chromium the way the browser tests do: the same browser, found the same way."""

from tests.browser.conftest import browser_context_args, browser_type_launch_args  # noqa: F401  (fixtures)
