"""The Grafana dashboard of the operations view, generated from the same panels as the
dashboard's Operations tab (``lakehouse.catalog.ops_metrics.OPS_PANELS``) and written to
``docker/grafana/dashboards/smartmarket.json`` (compose provisions it; a test checks that the
file is what this generates). Run ``python -m scripts.grafana_dashboard`` after changing the
panels."""

from __future__ import annotations

import json
import sys
from typing import Any

from lakehouse.catalog.ops_metrics import OPS_PANELS, Panel
from lakehouse.config.settings import PROJECT_ROOT

DASHBOARD_FILE = PROJECT_ROOT / "docker" / "grafana" / "dashboards" / "smartmarket.json"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # the provisioned data source's uid
UNITS = {"rows/s": "rps", "records": "short", "s": "s", "holds": "short", "restarts": "short"}
WIDTH, HEIGHT = 12, 8  # two panels a row (Grafana's grid is 24 wide)


def _timeseries(panel: Panel, number: int) -> dict[str, Any]:
    return {
        "id": number + 1,
        "type": "timeseries",
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {
            "x": (number % 2) * WIDTH,
            "y": (number // 2) * HEIGHT,
            "w": WIDTH,
            "h": HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": UNITS.get(panel.unit, "short")}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": "A",
                "datasource": DATASOURCE,
                "expr": panel.query,
                "legendFormat": f"{{{{{panel.legend}}}}}" if panel.legend else panel.title,
            }
        ],
    }


def dashboard() -> dict[str, Any]:
    panels = [_timeseries(p, n) for n, p in enumerate(OPS_PANELS)]
    rows = (len(OPS_PANELS) + 1) // 2
    panels.append(
        {
            "id": len(OPS_PANELS) + 1,
            "type": "alertlist",
            "title": "Alerts firing",
            "gridPos": {"x": 0, "y": rows * HEIGHT, "w": 2 * WIDTH, "h": HEIGHT},
            "options": {
                "alertListOptions": {"stateFilter": {"firing": True, "pending": True}},
                "datasource": "-- Grafana --",
                "showOptions": "current",
            },
        }
    )
    return {
        "uid": "smartmarket-operations",
        "title": "Smart Market — Operations",
        "tags": ["smartmarket"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
    }


def dashboard_text() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    DASHBOARD_FILE.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_FILE.write_text(dashboard_text())
    print(DASHBOARD_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
