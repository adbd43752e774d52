"""Why a test is skipped, each reason with the command that installs what is missing, and the block at the end of the
run that lists the skipped tests by reason (a pytest plugin: tests/conftest.py loads it).

Without it, ``make test`` on a machine without Prometheus or kubectl ended in "N skipped" and nothing else: the
end-to-end and rendering tests went missing without a word. CI installs Prometheus (.ci/run), so nothing skips there.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import pytest

NO_PROMETHEUS = (
    "needs a Prometheus binary on PATH; install: sudo apt-get install prometheus (Debian/Ubuntu, as CI does), "
    "or a release from https://prometheus.io/download/"
)
NO_KUBECTL = (
    "needs kubectl on PATH to render the manifests (the raw YAML files are still validated); install: "
    'curl -LO "https://dl.k8s.io/release/$(curl -Ls https://dl.k8s.io/release/stable.txt)/bin/linux/amd64/kubectl" '
    "&& sudo install -m 0755 kubectl /usr/local/bin/kubectl (see https://kubernetes.io/docs/tasks/tools/)"
)
NO_RAY = "needs Ray, the optional executor; install: pip install 'rlscale[ray]'"
NO_GOOGLE_AUTH = "needs google-auth (Google Managed Prometheus tokens); install: pip install google-auth"
NO_SHARED = "needs the ../shared checkout beside this repository (shared/data/gpu_profile, the calibration's source)"

TITLE = "skipped: what this machine lacks"
_PREFIX = "Skipped: "  # pytest's prefix on the reasons of pytest.skip() and importorskip()


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason a report was skipped for, as the test gave it."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix(_PREFIX)


def skipped_by_reason(reports: Sequence[pytest.TestReport | pytest.CollectReport]) -> dict[str, Counter[str]]:
    """Each reason with the files its skipped tests are in, and how many in each, in the order first seen."""
    groups: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for report in reports:
        groups[_reason(report)][report.nodeid.split("::")[0]] += 1
    return dict(groups)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the short summary: one entry per reason, 'skipped N tests: <reason, with its install command>', then
    the files those tests are in."""
    groups = skipped_by_reason(terminalreporter.stats.get("skipped", []))
    if not groups:
        return
    terminalreporter.section(TITLE, sep="=")
    for reason, files in groups.items():
        n = sum(files.values())
        terminalreporter.write_line(f"skipped {n} test{'' if n == 1 else 's'}: {reason}")
        terminalreporter.write_line("    " + ", ".join(f"{path} ({k})" for path, k in files.items()))
