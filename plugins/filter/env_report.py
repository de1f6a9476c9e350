# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for playbooks/report.yml; the logic lives in module_utils/env_report.py (unit-tested there)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.stackops.platform.plugins.module_utils.env_report import (
    EnvReportError,
    comparison_markdown,
    figures_from_answers,
)


def _prometheus_figures(answers, queries=None):
    try:
        return figures_from_answers(answers, queries)
    except EnvReportError as exc:
        raise AnsibleFilterError(str(exc)) from None


def _env_comparison_markdown(figures, baseline, candidate, *, window="", end="", sources=None):
    try:
        return comparison_markdown(figures, baseline, candidate, window=window, end=end, sources=sources)
    except EnvReportError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {
            "prometheus_figures": _prometheus_figures,
            "env_comparison_markdown": _env_comparison_markdown,
        }
