#!/usr/bin/env python3
"""Checks that a Grafana dashboard uses only the metrics docs/metrics.md documents.

Usage: check_dashboard.py DASHBOARD.json METRICS.md

Fails (exit 1, naming each problem) when the dashboard is not valid JSON, when a panel
(other than a row) has no targets or a target has no expression, or when an expression
(or a template variable's query) names a metric that metrics.md does not document.

A metric is documented when it appears in backticks in a Markdown table row. In an
expression, NAME_bucket, NAME_sum and NAME_count stand for the histogram NAME when NAME is
documented in a row whose type is "histogram". Standard library only.
"""

import json
import re
import sys

METRIC = re.compile(r"(?<![A-Za-z0-9_:])(kaito_[a-z0-9_]+|process_[a-z_]+)")
BACKTICKED = re.compile(r"`([^`]*)`")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def documented_metrics(markdown):
    """(all documented names, the histograms among them), from the tables' rows."""
    names, histograms = set(), set()
    for line in markdown.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        row_names = []
        for span in BACKTICKED.findall(line):
            row_names.extend(METRIC.findall(span))
        names.update(row_names)
        if any(c.lower() == "histogram" for c in cells):
            first = METRIC.findall(" ".join(BACKTICKED.findall(cells[0]))) if cells else []
            histograms.update(first)
    return names, histograms


def walk_panels(panels, path=""):
    """Every panel, nested ones (in collapsed rows) included, with a readable path."""
    for index, panel in enumerate(panels or []):
        if not isinstance(panel, dict):
            yield f"{path}panels[{index}]", {}
            continue
        where = f'{path}panel {panel.get("id", index)} "{panel.get("title", "")}"'
        yield where, panel
        yield from walk_panels(panel.get("panels"), where + " > ")


def undocumented(expr, names, histograms):
    missing = []
    for token in METRIC.findall(expr):
        if token in names:
            continue
        base = next((token[: -len(s)] for s in HISTOGRAM_SUFFIXES if token.endswith(s)), None)
        if base is not None and base in histograms:
            continue
        missing.append(token)
    return missing


def main(argv):
    if len(argv) != 3:
        print("usage: check_dashboard.py DASHBOARD.json METRICS.md", file=sys.stderr)
        return 2
    dashboard_path, metrics_path = argv[1], argv[2]
    try:
        with open(dashboard_path, encoding="utf-8") as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL: {dashboard_path}: not valid JSON: {e}")
        return 1
    try:
        with open(metrics_path, encoding="utf-8") as f:
            names, histograms = documented_metrics(f.read())
    except OSError as e:
        print(f"FAIL: {metrics_path}: {e}")
        return 1
    if not isinstance(dashboard, dict):
        print(f"FAIL: {dashboard_path}: the top level is not a JSON object")
        return 1
    if not names:
        print(f"FAIL: {metrics_path}: documents no metric (no backticked name in a table row)")
        return 1

    problems = []
    panel_count = expr_count = 0
    used = set()
    for where, panel in walk_panels(dashboard.get("panels")):
        if panel.get("type") == "row":
            continue
        panel_count += 1
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            problems.append(f"{where}: no targets")
            continue
        for target in targets:
            expr = target.get("expr") if isinstance(target, dict) else None
            ref = target.get("refId", "?") if isinstance(target, dict) else "?"
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{where} target {ref}: no expression")
                continue
            expr_count += 1
            used.update(METRIC.findall(expr))
            for token in undocumented(expr, names, histograms):
                problems.append(f"{where} target {ref}: {token} is not documented in {metrics_path}")

    for variable in (dashboard.get("templating") or {}).get("list") or []:
        if not isinstance(variable, dict) or variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        for text in (query, variable.get("definition")):
            if not isinstance(text, str):
                continue
            used.update(METRIC.findall(text))
            for token in undocumented(text, names, histograms):
                problems.append(f'variable "{variable.get("name")}": {token} is not documented '
                                f"in {metrics_path}")

    if panel_count == 0:
        problems.append("the dashboard has no panels")
    problems = list(dict.fromkeys(problems))
    if problems:
        for p in problems:
            print(f"FAIL: {p}")
        print(f"check_dashboard: {len(problems)} problem(s) in {dashboard_path}")
        return 1
    print(f"check_dashboard: OK: {panel_count} panels, {expr_count} expressions, "
          f"{len(used)} metric names used, all among the {len(names)} documented in {metrics_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
