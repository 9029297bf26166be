"""Renders the template's CloudWatch dashboard (template.yaml, resource `Dashboard`) as a picture,
fed with what a recorded surge run saw, so that the README shows what an operator would see
after a burst. `make dashboard-picture` records the run and calls this.

    python scripts/dashboard_picture.py RECORDED.jsonl OUT.png

RECORDED.jsonl is written by `surge --record` (connect_standin::surge::Recorder): the function's
EMF lines, each invocation, each message's life and the queues' depths, in epoch milliseconds of
a run whose durations were divided by its scale. Everything here is shown unscaled (as the surge
table reports), so a minute on the picture is a minute of the deployed function.

What each widget's metric is made of:
- the function's own metrics (namespace ConnectTaskBridge): its EMF lines, summed into the
  dimension set the widget names, as CloudWatch does;
- AWS/SQS ApproximateNumberOfMessagesVisible: the task queue's and its DLQ's depths sampled by
  the surge; ApproximateAgeOfOldestMessage: from each message's SentTimestamp to its deletion;
- AWS/Lambda Duration, Errors, ConcurrentExecutions: from the invocations;
- metrics with no data in the run (the async failure queue, the rule's DLQ, Lambda's throttles)
  draw nothing, as in CloudWatch;
- SEARCH and metric math (the widgets' expressions) evaluated over those series.
"""

import json
import math
import os
import re
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from samcli.yamlhelper import yaml_parse  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET_S = 60  # every widget's period
# tab20's dark shades, then its light ones: a widget of 14 lines gets 14 colours.
PALETTE = [matplotlib.colormaps["tab20"](i) for i in list(range(0, 20, 2)) + list(range(1, 20, 2))]
NAMES = {  # what `${...}` stands for in the picture
    "TaskQueue.QueueName": "task-queue",
    "TaskDeadLetterQueue.QueueName": "task-dlq",
    "FailureQueue.QueueName": "failure-queue",
    "PriorityQueue.QueueName": "priority-queue",
    "PriorityDeadLetterQueue.QueueName": "priority-dlq",
    "RuleDeadLetterQueue": "rule-dlq",
    "BridgeFunction": "connect-task-bridge",
    "AWS::Region": "eu-central-1",
    "AWS::StackName": "example-stack",
}


def dashboard_body():
    with open(os.path.join(ROOT, "template.yaml")) as f:
        template = yaml_parse(f.read())
    sub = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text = sub[0] if isinstance(sub, list) else sub
    defaults = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}

    def value(match):
        name = match.group(1)
        return NAMES.get(name) or defaults[name]

    return json.loads(re.sub(r"\$\{([^}]+)\}", value, text))


class Run:
    """The recorded run on one unscaled timeline (seconds since the first scenario began)."""

    def __init__(self, path):
        entries = [json.loads(line) for line in open(path) if line.strip()]
        self.segments = []  # (start_ms, scale, offset_s)
        offset = 0.0
        scenarios = [e for e in entries if e["kind"] == "scenario"]
        ends = [s["at_ms"] for s in scenarios[1:]] + [max(self._at(e) for e in entries)]
        for s, end in zip(scenarios, ends):
            self.segments.append((s["at_ms"], s["scale"], offset))
            offset += (end - s["at_ms"]) / 1000 * s["scale"]
        self.end_s = offset
        self.names = [s["name"] for s in scenarios]
        self.entries = entries

    @staticmethod
    def _at(e):
        return e.get("at_ms") or e.get("start_ms") or e.get("doc", {}).get("_aws", {}).get("Timestamp", 0)

    def scale_at(self, ms):
        return [s for s in self.segments if s[0] <= ms][-1][1] if ms >= self.segments[0][0] else self.segments[0][1]

    def t(self, ms):
        """Unscaled seconds since the run began."""
        start, scale, offset = [s for s in self.segments if s[0] <= ms][-1] if ms >= self.segments[0][0] else self.segments[0]
        return offset + (ms - start) / 1000 * scale

    def buckets(self):
        return np.arange(0, math.ceil(self.end_s / BUCKET_S) * BUCKET_S, BUCKET_S)

    def of(self, kind):
        return [e for e in self.entries if e["kind"] == kind]


def aggregate(points, stat, edges):
    """One value per bucket (NaN where no data), as CloudWatch's statistics."""
    groups = defaultdict(list)
    for t, v in points:
        groups[int(t // BUCKET_S)].append(v)
    out = np.full(len(edges), np.nan)
    for i in range(len(edges)):
        vs = groups.get(i)
        if not vs:
            continue
        if stat == "Sum":
            out[i] = sum(vs)
        elif stat == "Maximum":
            out[i] = max(vs)
        elif stat == "Average":
            out[i] = sum(vs) / len(vs)
        elif stat.startswith("p"):
            out[i] = float(np.percentile(vs, float(stat[1:])))
        else:
            raise SystemExit(f"statistic {stat} is not drawn here")
    return out


def emf_points(run, name, dims):
    """The EMF values of `name` in documents declaring exactly the dimension set `dims`."""
    points = []
    for e in run.of("emf"):
        doc = e["doc"]
        if name not in doc:
            continue
        declared = doc["_aws"]["CloudWatchMetrics"][0]
        if not any(sorted(s) == sorted(dims) for s in declared["Dimensions"]):
            continue
        if any(doc.get(k) != v for k, v in dims.items()):
            continue
        value = doc[name]
        ms = doc["_aws"]["Timestamp"]
        if name.endswith("Ms"):
            value *= run.scale_at(ms)
        points.append((run.t(ms), value))
    return points


def aws_points(run, namespace, name, dims, edges):
    if namespace == "AWS/SQS":
        queue = dims.get("QueueName")
        if name == "ApproximateNumberOfMessagesVisible" and queue in ("task-queue", "task-dlq"):
            field = "visible" if queue == "task-queue" else "dlq"
            return [(run.t(e["at_ms"]), e[field]) for e in run.of("queue")]
        if name == "ApproximateAgeOfOldestMessage" and queue == "task-queue":
            sent, deleted = {}, {}
            for e in run.of("received"):
                if e["sent_ms"]:
                    sent.setdefault(e["id"], e["sent_ms"])
            for e in run.of("deleted"):
                deleted[e["id"]] = e["at_ms"]
            lives = [(run.t(s), run.t(deleted.get(i, 1e20)) if i in deleted else run.end_s)
                     for i, s in sent.items()]
            points = []
            for t in np.arange(0, run.end_s, 5.0):
                ages = [t - s for s, d in lives if s <= t < d]
                if ages:
                    points.append((t, max(ages)))
            return points
        return []
    if namespace == "AWS/Lambda":
        calls = [(run.t(e["start_ms"]), run.t(e["end_ms"]), e["error"]) for e in run.of("invocation")]
        if name == "Duration":
            return [(s, (e - s) * 1000) for s, e, _ in calls]
        if name == "Errors":
            return [(s, 1 if err else 0) for s, e, err in calls]
        if name == "ConcurrentExecutions":
            return [(t, sum(1 for s, e, _ in calls if s <= t < e)) for t in np.arange(0, run.end_s, 1.0)]
        return []
    raise SystemExit(f"namespace {namespace} is not drawn here")


def series(run, metric, widget_stat, edges):
    """(label, values, options) of one metric array of a widget, or of a SEARCH (several)."""
    *parts, options = metric if isinstance(metric[-1], dict) else (*metric, {})
    namespace, name, *dim_list = parts
    dims = dict(zip(dim_list[::2], dim_list[1::2]))
    stat = options.get("stat", widget_stat)
    if namespace.startswith("AWS/"):
        points = aws_points(run, namespace, name, dims, edges)
    else:
        points = emf_points(run, name, dims)
    label = options.get("label", name)
    return label, aggregate(points, stat, edges), options


def search(run, expression, edges):
    """SEARCH('{Namespace,Dim,...} MetricName="X"', 'Stat', period): one series per dimension
    value combination the run's EMF lines reported."""
    m = re.match(r"SEARCH\('\{([^}]*)\} MetricName=\"([^\"]+)\"', '(\w+)', \d+\)", expression)
    namespace, *dims = m.group(1).split(",")
    name, stat = m.group(2), m.group(3)
    combos = sorted({tuple(e["doc"].get(d) for d in dims) for e in run.of("emf")
                     if name in e["doc"] and all(d in e["doc"] for d in dims)})
    out = []
    for combo in combos:
        points = emf_points(run, name, dict(zip(dims, combo)))
        out.append((" ".join(combo), aggregate(points, stat, edges), {}))
    return out


def draw_metric(ax, run, widget, edges):
    p = widget["properties"]
    minutes = edges / 60
    by_id, drawn = {}, []
    for metric in p["metrics"]:
        if isinstance(metric[0], dict) and "expression" in metric[0]:
            drawn.append(("expression", metric[0]))
            continue
        label, values, options = series(run, metric, p.get("stat", "Average"), edges)
        if "id" in options:
            by_id[options["id"]] = values
        drawn.append(("metric", (label, values, options)))
    right = None
    colour = 0  # one colour cycle over both axes, as CloudWatch colours a widget's lines
    for kind, item in drawn:
        if kind == "expression":
            expression = item["expression"]
            if expression.startswith("SEARCH("):
                lines = search(run, expression, edges)
            else:
                functions = {"RUNNING_SUM": lambda x: np.nancumsum(x),
                             "FILL": lambda x, v: np.nan_to_num(x, nan=v)}
                values = eval(expression, {"__builtins__": {}}, {**functions, **by_id})  # noqa: S307 (our own template)
                lines = [(item.get("label", item["id"]), values, item)]
        else:
            lines = [item]
        for label, values, options in lines:
            style = {"label": label, "color": PALETTE[colour % len(PALETTE)]}
            colour += 1
            target = ax
            if options.get("yAxis") == "right":
                right = right or ax.twinx()
                target = right
            if np.all(np.isnan(values)):
                target.plot([], [], **style)  # listed, no data: as CloudWatch shows it
                continue
            if p.get("stacked"):
                target.fill_between(minutes, 0, np.nan_to_num(values), step="post", alpha=0.5, **style)
            else:
                target.step(minutes, values, where="post", linewidth=1.4, **style)
    for a in p.get("annotations", {}).get("horizontal", []):
        ax.axhline(a["value"], color="#d62728", linestyle="--", linewidth=1)
        ax.annotate(a["label"], (0, a["value"]), xycoords=("axes fraction", "data"),
                    fontsize=7, color="#d62728", va="bottom")
    axes = p.get("yAxis", {})
    ax.set_ylabel(axes.get("left", {}).get("label", ""), fontsize=8)
    if axes.get("left", {}).get("min") == 0:
        ax.set_ylim(bottom=0)
    if right is not None:
        right.set_ylabel(axes.get("right", {}).get("label", ""), fontsize=8)
        if axes.get("right", {}).get("min") == 0:
            right.set_ylim(bottom=0)
        right.tick_params(labelsize=7)
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        h2, l2 = right.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=6, loc="upper right", ncol=2 if len(labels) > 7 else 1,
              framealpha=0.8)
    ax.set_title(p["title"], fontsize=9, loc="left")
    ax.set_xlabel("minutes since the burst", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def main():
    recorded, out = sys.argv[1], sys.argv[2]
    body = dashboard_body()
    run = Run(recorded)
    edges = run.buckets()
    rows = max(w["y"] + w["height"] for w in body["widgets"])
    unit = 0.62  # inches per grid row
    fig = plt.figure(figsize=(18, rows * unit))
    pad = 0.012
    for w in body["widgets"]:
        left, width = w["x"] / 24 + pad, w["width"] / 24 - 2.6 * pad
        top = 1 - w["y"] / rows
        height = w["height"] / rows
        if w["type"] == "text":
            ax = fig.add_axes([left, top - height, width, height])
            ax.axis("off")
            text = w["properties"]["markdown"].replace("## ", "")
            title, _, rest = text.partition("\n")
            ax.text(0, 0.75, title, fontsize=13, weight="bold", va="center")
            ax.text(0, 0.25, rest + f"  Picture: a surge run ({'; then '.join(run.names)}), unscaled.",
                    fontsize=8, va="center", wrap=True)
            continue
        ax = fig.add_axes([left + 0.02, top - height + 0.12 * 6 / rows,
                           width - 0.035, height - 0.2 * 6 / rows])
        draw_metric(ax, run, w, edges)
    fig.savefig(out, dpi=80)
    print(f"wrote {out}: {len(body['widgets'])} widgets, {len(edges)} minutes")


if __name__ == "__main__":
    main()
