# SPDX-License-Identifier: MIT
"""
Monitoring: the `MetricsCollector` (a `MetricsHook`) and what reads it.

Health scores, issue detection with recommendations, the performance report,
the background `Monitor` and the Prometheus exporter. Events flow one way,
from the policy parts through the hook protocol into the collector; this
package knows only the shared base, never the parts that feed it.
"""

from __future__ import annotations

from ._collector import MetricsCollector
from ._health import HealthThresholds
from ._monitor import Monitor
from ._prometheus import PrometheusCollector, register_prometheus, unregister_prometheus

__all__ = [
    "HealthThresholds",
    "MetricsCollector",
    "Monitor",
    "PrometheusCollector",
    "register_prometheus",
    "unregister_prometheus",
]
