"""The end of a test run says which tests were skipped, why, and how to install what they need: `make test` on a
machine without Prometheus or kubectl must not drop the end-to-end and rendering tests silently."""

from __future__ import annotations

import pytest

from tests.skips import NO_KUBECTL, NO_PROMETHEUS, NO_RAY

INNER = """
import pytest

from tests.skips import NO_KUBECTL, NO_PROMETHEUS, NO_RAY

@pytest.mark.skipif(True, reason=NO_PROMETHEUS)
def test_end_to_end():
    pass


@pytest.mark.skipif(True, reason=NO_PROMETHEUS)
def test_scrape():
    pass


def test_render():
    pytest.skip(NO_KUBECTL)


def test_ray():
    pytest.importorskip("a_module_that_is_not_there", reason=NO_RAY)


def test_runs():
    pass
"""


def test_the_reasons_say_how_to_install_what_is_missing():
    assert "sudo apt-get install prometheus" in NO_PROMETHEUS
    assert "https://dl.k8s.io/release/" in NO_KUBECTL and "install" in NO_KUBECTL
    assert "pip install 'rlscale[ray]'" in NO_RAY


def test_the_summary_groups_the_skipped_tests_by_reason(pytester: pytest.Pytester):
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest("-p", "tests.skips")
    result.assert_outcomes(passed=1, skipped=4)
    out = result.stdout.str()
    block = out[out.index(" skipped: what this machine lacks ") :]
    assert f"skipped 2 tests: {NO_PROMETHEUS}\n    test_inner.py (2)\n" in block
    assert f"skipped 1 test: {NO_KUBECTL}\n    test_inner.py (1)\n" in block
    assert f"skipped 1 test: {NO_RAY}\n    test_inner.py (1)\n" in block


def test_no_block_when_nothing_is_skipped(pytester: pytest.Pytester):
    pytester.makepyfile(test_inner="def test_runs():\n    pass\n")
    result = pytester.runpytest("-p", "tests.skips")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*what this machine lacks*")
