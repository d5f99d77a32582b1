#!/usr/bin/env python3
"""Checks that the Grafana dashboard and the alert rules parse, and that every
metric they name is one the operator exports.

Usage: check_metric_names.py METRICS_TEXT DASHBOARD_JSON RULES_YAML
METRICS_TEXT is a scrape of the operator's /metrics (Prometheus text format).
"""
import json
import re
import sys

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset",
            "group_left", "group_right", "inf", "nan"}


def exported(path):
    names = set()
    for line in open(path):
        m = re.match(r"^# TYPE (\S+) (\S+)", line)
        if not m:
            continue
        name, kind = m.groups()
        names.add(name)
        if kind in ("histogram", "summary"):
            names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


def metrics_in(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                           # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                          # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    out = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if word.lower() in KEYWORDS or rest.startswith("("):
            continue
        out.add(word)
    return out


def rules_exprs(path):
    # A small reader for the rules file's "expr:" entries (plain or block scalar),
    # so the check needs no YAML library.
    exprs, lines = [], open(path).read().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:- )?expr:\s*(.*)$", lines[i])
        if m:
            indent, value = len(m.group(1)), m.group(2).strip()
            if value in ("|", ">", "|-", ">-"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                exprs.append(" ".join(block))
                continue
            exprs.append(value)
        i += 1
    return exprs


def main():
    metrics_text, dashboard, rules = sys.argv[1:4]
    have = exported(metrics_text)
    if len(have) < 20:
        sys.exit(f"only {len(have)} metric families scraped: is the operator's /metrics complete?")
    problems = []
    dash = json.load(open(dashboard))
    panels = dash.get("panels", [])
    if not panels:
        problems.append("dashboard has no panels")
    checked = 0
    for p in panels:
        names = set()
        for t in p.get("targets", []):
            names |= metrics_in(t.get("expr", ""))
        if not names:
            problems.append(f"panel '{p.get('title')}' names no metric")
        for n in sorted(names - have):
            problems.append(f"panel '{p.get('title')}' uses {n}, which the operator does not export")
        checked += len(names)
    exprs = rules_exprs(rules)
    if len(exprs) < 5:
        problems.append(f"expected at least 5 alert rules, found {len(exprs)}")
    for e in exprs:
        names = metrics_in(e)
        if not names:
            problems.append(f"rule '{e}' names no metric")
        for n in sorted(names - have):
            problems.append(f"rule '{e[:60]}...' uses {n}, which the operator does not export")
        checked += len(names)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"dashboard ({len(panels)} panels) and {len(exprs)} alert rules name only exported metrics "
          f"({checked} references, {len(have)} series names exported)")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
