// The live job page: polls the job, draws the loss chart, reloads when done.
//
// The chart has axes with their values, a legend, the phases of a composition
// named over the plot, and a text alternative: a summary sentence and a table
// of the values (both also written by the server, for pages without scripts).

const SVG = "http://www.w3.org/2000/svg";
const FINAL = ["succeeded", "failed", "cancelled"];
export const PHASES = [
  ["loading", "Loading"],
  ["scoring", "Scoring candidates"],
  ["optimising", "Optimising"],
  ["evaluating", "Evaluating"],
];
// Plot area inside the 600 × 220 view box: room for the phase names above,
// the y values on the left and the x axis's values and name below.
const BOX = { width: 600, height: 220, left: 52, right: 10, top: 26, bottom: 34 };

/** The phase of a composition: waiting, loading, scoring, optimising, evaluating, or its status. */
export function compositionPhase(job) {
  if (job.status === "queued") return "waiting";
  if (FINAL.includes(job.status)) return job.status;
  if (job.current_step >= job.steps) return "evaluating";
  if (job.current_step > 0) return "optimising";
  if (job.preselect && job.scored_candidates > 0) return "scoring";
  return "loading";
}

/** The second line: the best so far, or (``mean10``) the mean of the last 10 values. */
export function secondLine(values, kind) {
  const line = [];
  values.forEach((v, i) => {
    if (kind === "mean10") {
      const tail = values.slice(Math.max(0, i - 9), i + 1);
      line.push(tail.reduce((a, b) => a + b, 0) / tail.length);
    } else {
      line.push(Math.min(v, line.at(-1) ?? Infinity));
    }
  });
  return line;
}

/** One sentence that says what the chart shows. */
export function chartSummary(values, { quantity, xName }) {
  if (!values.length) return `No ${quantity} yet: the chart fills in as the job runs.`;
  const best = Math.min(...values);
  const at = values.indexOf(best) + 1;
  const f = (v) => v.toFixed(4);
  return `${quantity[0].toUpperCase()}${quantity.slice(1)} over ${values.length} ${xName}` +
    `${values.length === 1 ? "" : "s"}: first ${f(values[0])}, last ${f(values.at(-1))}, ` +
    `lowest ${f(best)} at ${xName} ${at}.`;
}

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function drawPhases(chart, phase, withScoring) {
  const shown = PHASES.filter(([key]) => withScoring || key !== "scoring");
  const width = (BOX.width - BOX.left - BOX.right) / shown.length;
  shown.forEach(([key, label], i) => {
    const x = BOX.left + i * width;
    const current = key === phase;
    chart.append(svg("rect", { x, y: 2, width: width - 4, height: 18, rx: 3,
      class: current ? "phase current" : "phase" }));
    chart.append(svg("text", { x: x + (width - 4) / 2, y: 15, "text-anchor": "middle",
      class: current ? "phase-name current" : "phase-name" }, current ? `▶ ${label}` : label));
  });
}

function drawAxes(chart, low, high, count, xName, yName) {
  const { width: w, height: h, left, right, top, bottom } = BOX;
  chart.append(svg("line", { x1: left, y1: h - bottom, x2: w - right, y2: h - bottom, class: "axis" }));
  chart.append(svg("line", { x1: left, y1: top, x2: left, y2: h - bottom, class: "axis" }));
  chart.append(svg("text", { x: left - 4, y: top + 4, "text-anchor": "end", class: "tick" }, high.toFixed(3)));
  chart.append(svg("text", { x: left - 4, y: h - bottom, "text-anchor": "end", class: "tick" }, low.toFixed(3)));
  chart.append(svg("text", { x: left, y: h - bottom + 14, "text-anchor": "middle", class: "tick" }, "1"));
  chart.append(svg("text", { x: w - right, y: h - bottom + 14, "text-anchor": "end", class: "tick" }, String(count)));
  chart.append(svg("text", { x: (left + w - right) / 2, y: h - 4, "text-anchor": "middle", class: "axis-name" }, xName));
  chart.append(svg("text", { x: 12, y: (top + h - bottom) / 2, "text-anchor": "middle", class: "axis-name",
    transform: `rotate(-90 12 ${(top + h - bottom) / 2})` }, yName));
}

/** Draw ``values`` (and its second line) into the chart's SVG element. */
export function drawChart(chart, values, { kind, phase, withScoring, xName, yName }) {
  chart.replaceChildren();
  if (phase) drawPhases(chart, phase, withScoring);
  if (!values.length) {
    chart.append(svg("text", { x: BOX.width / 2, y: BOX.height / 2, "text-anchor": "middle", class: "axis-name" },
      "no values yet"));
    return;
  }
  const low = Math.min(...values), high = Math.max(...values);
  const span = high - low || 1;
  const { width: w, height: h, left, right, top, bottom } = BOX;
  const x = (i) => left + (values.length === 1 ? 0 : (i * (w - left - right)) / (values.length - 1));
  const y = (v) => h - bottom - ((v - low) * (h - top - bottom)) / span;
  drawAxes(chart, low, high, values.length, xName, yName);
  const line = (vals, cls) => chart.append(svg("polyline", {
    points: vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "), class: cls }));
  line(values, "all");
  line(secondLine(values, kind), "best");
}

function fillTable(table, values, kind) {
  const second = secondLine(values, kind);
  table.tBodies[0].replaceChildren(...values.map((v, i) => {
    const tr = document.createElement("tr");
    [String(i + 1), v.toFixed(4), second[i].toFixed(4)].forEach((text) => {
      tr.append(Object.assign(document.createElement("td"), { textContent: text, className: "num" }));
    });
    return tr;
  }));
}

function setUp(live) {
  const chart = document.getElementById("loss-curve");
  const summary = document.getElementById("loss-summary");
  const table = document.getElementById("loss-table");
  const options = {
    kind: live.dataset.curve,
    withScoring: live.dataset.preselect === "true",
    xName: live.dataset.xName,
    yName: live.dataset.yName,
  };
  let history = JSON.parse(document.getElementById("loss-history").textContent || "[]");
  let phase = live.dataset.phase;

  function draw() {
    drawChart(chart, history, { ...options, phase: live.dataset.phases === "true" ? phase : null });
    summary.textContent = chartSummary(history, { quantity: options.yName, xName: options.xName });
    if (table) fillTable(table, history, options.kind);
  }

  const bars = document.querySelectorAll(".weight-bar span");
  const max = Math.max(...Array.from(bars).map((b) => Math.abs(parseFloat(b.dataset.weight))), 1e-9);
  bars.forEach((b) => { b.style.width = `${(50 * Math.abs(parseFloat(b.dataset.weight))) / max}%`; });

  draw();
  if (live.dataset.final === "true") return;

  const text = (id, value) => { const el = document.getElementById(id); if (el) el.textContent = value; };
  async function poll() {
    try {
      const response = await fetch(live.dataset.apiUrl, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const job = await response.json();
        document.getElementById("job-bar").value = job.current_step;
        text("job-step", `step ${job.current_step} / ${job.steps}`);
        text("job-scored", `${job.scored_candidates}`);
        text("job-status", job.status.charAt(0).toUpperCase() + job.status.slice(1));
        if (job.loss_history.length) text("job-current", job.loss_history.at(-1).toFixed(4));
        if (job.best_loss != null) text("job-best", job.best_loss.toFixed(4));
        const nextPhase = compositionPhase({ ...job, preselect: job.settings?.preselect });
        if (job.loss_history.length !== history.length || nextPhase !== phase) {
          history = job.loss_history;
          phase = nextPhase;
          draw();
        }
        if (FINAL.includes(job.status)) { window.location.reload(); return; }
      }
    } catch (e) { /* a missed poll is retried */ }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
}

if (typeof document !== "undefined") {
  const live = document.getElementById("job-live");
  if (live) setUp(live);
}
