// The live job page: polls the job, grows the loss curve, reloads when done.
(function () {
  const live = document.getElementById("job-live");
  if (!live) return;
  const curve = document.getElementById("loss-curve");
  let history = JSON.parse(document.getElementById("loss-history").textContent || "[]");

  function drawCurve(values) {
    curve.innerHTML = "";
    if (values.length < 1) return;
    const w = 600, h = 180, pad = 8;
    const low = Math.min(...values), high = Math.max(...values);
    const span = high - low || 1;
    const x = (i) => pad + (values.length === 1 ? 0 : (i * (w - 2 * pad)) / (values.length - 1));
    const y = (v) => h - pad - ((v - low) * (h - 2 * pad)) / span;
    // The second line: the best so far (compositions), or the mean of the last
    // 10 steps (training, data-curve="mean10"), whose loss is noisy step to step.
    const best = [];
    if (live.dataset.curve === "mean10") {
      values.forEach((v, i) => {
        const tail = values.slice(Math.max(0, i - 9), i + 1);
        best.push(tail.reduce((a, b) => a + b, 0) / tail.length);
      });
    } else {
      values.reduce((m, v) => { const b = Math.min(m, v); best.push(b); return b; }, Infinity);
    }
    const line = (vals, cls) => {
      const p = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      p.setAttribute("points", vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
      p.setAttribute("class", cls);
      curve.appendChild(p);
    };
    line(values, "all");
    line(best, "best");
  }

  function drawWeights() {
    const bars = document.querySelectorAll(".weight-bar span");
    const max = Math.max(...Array.from(bars).map((b) => Math.abs(parseFloat(b.dataset.weight))), 1e-9);
    bars.forEach((b) => { b.style.width = `${(50 * Math.abs(parseFloat(b.dataset.weight))) / max}%`; });
  }

  drawCurve(history);
  drawWeights();
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
        if (job.loss_history.length !== history.length) { history = job.loss_history; drawCurve(history); }
        if (["succeeded", "failed", "cancelled"].includes(job.status)) { window.location.reload(); return; }
      }
    } catch (e) { /* a missed poll is retried */ }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
