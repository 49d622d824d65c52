// Follows the job through the API: bar, counters and new result rows; reloads once it is done.
(function () {
  const live = document.getElementById("import-live");
  if (live.dataset.final === "true") return;
  const rows = document.querySelector("#import-results tbody");
  let shown = parseInt(live.dataset.shown, 10);
  const text = (id, value) => { document.getElementById(id).textContent = value; };
  const cell = (row, value, tag) => {
    const td = row.insertCell();
    const inner = document.createElement(tag || "span");
    inner.textContent = value || "";
    td.appendChild(inner);
    return inner;
  };
  async function poll() {
    try {
      const response = await fetch(live.dataset.apiUrl, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const job = await response.json();
        if (["succeeded", "failed", "cancelled"].includes(job.status)) { window.location.reload(); return; }
        const bar = document.getElementById("import-bar");
        bar.max = Math.max(job.total, 1);
        bar.value = job.completed;
        text("import-count", `${job.completed} / ${job.total} repositories`);
        text("import-status", job.status.charAt(0).toUpperCase() + job.status.slice(1));
        text("import-imported", job.imported);
        text("import-skipped", job.skipped);
        text("import-failed", job.failed);
        text("import-current", job.current_repo ? `· now ${job.current_repo}` : "");
        if (shown === 0 && job.results.length) rows.innerHTML = "";
        for (const result of job.results.slice(shown)) {
          const row = rows.insertRow();
          cell(row, result.repo_id, "code");
          const badge = cell(row, result.status);
          badge.className = `status status-${result.status === "failed" ? "failed" : "succeeded"}`;
          if (result.module) {
            const link = cell(row, result.module, "a");
            link.href = `/${result.module}/`;
          } else {
            cell(row, "");
          }
          cell(row, result.message);
        }
        shown = job.results.length;
      }
    } catch (e) { /* a missed poll is retried */ }
    setTimeout(poll, 1500);
  }
  setTimeout(poll, 1500);
})();
