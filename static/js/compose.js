// The composition form: module picker, editable examples table, parse preview.
(function () {
  const form = document.getElementById("compose-form");
  if (!form) return;
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;

  // Base model: reload so the module list shows only compatible modules.
  const base = form.querySelector("[name=base_model]");
  base.addEventListener("change", () => {
    const url = new URL(window.location.href);
    url.searchParams.set("base_model", base.value);
    window.location.href = url.toString();
  });

  // Choose modules / let the hub pick k.
  const chooseBox = document.getElementById("choose-modules");
  const pickBox = document.getElementById("pick-modules");
  function showSelection() {
    const mode = form.querySelector("[name=selection]:checked")?.value || "choose";
    chooseBox.hidden = mode !== "choose";
    pickBox.hidden = mode !== "pick";
  }
  form.querySelectorAll("[name=selection]").forEach((r) => r.addEventListener("change", showSelection));
  showSelection();

  const rows = Array.from(form.querySelectorAll(".pick-row"));
  const counter = document.getElementById("module-count");
  function count() {
    counter.textContent = rows.filter((r) => r.querySelector("input").checked).length;
  }
  rows.forEach((r) => r.querySelector("input").addEventListener("change", count));
  document.getElementById("module-filter").addEventListener("input", (event) => {
    const words = event.target.value.toLowerCase().split(/\s+/).filter(Boolean);
    rows.forEach((r) => {
      const text = r.textContent.toLowerCase();
      r.hidden = !words.every((w) => text.includes(w));
    });
  });
  function setShown(checked) {
    rows.filter((r) => !r.hidden).forEach((r) => (r.querySelector("input").checked = checked));
    count();
  }
  document.getElementById("select-all").addEventListener("click", () => setShown(true));
  document.getElementById("select-none").addEventListener("click", () => setShown(false));
  count();

  // Examples table <-> JSONL textarea (the textarea is what is submitted).
  const table = document.getElementById("examples-table");
  const textarea = document.getElementById(table.dataset.target);
  const formatSelect = document.getElementById(table.dataset.format);
  const body = table.querySelector("tbody");

  function cell(value) {
    const td = document.createElement("td");
    const area = document.createElement("textarea");
    area.rows = 2;
    area.value = value;
    area.addEventListener("input", tableToText);
    td.appendChild(area);
    return td;
  }
  function addRow(input = "", target = "") {
    const tr = document.createElement("tr");
    tr.appendChild(cell(input));
    tr.appendChild(cell(target));
    const remove = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = "remove";
    button.addEventListener("click", () => { tr.remove(); tableToText(); });
    remove.appendChild(button);
    tr.appendChild(remove);
    body.appendChild(tr);
  }
  function tableToText() {
    const lines = Array.from(body.rows)
      .map((tr) => tr.querySelectorAll("textarea"))
      .filter(([i, t]) => i.value.trim() || t.value.trim())
      .map(([i, t]) => JSON.stringify({ input: i.value, target: t.value }));
    textarea.value = lines.join("\n");
    formatSelect.value = "jsonl";
  }
  function textToTable() {
    body.innerHTML = "";
    if (formatSelect.value === "jsonl") {
      for (const line of textarea.value.split("\n")) {
        if (!line.trim()) continue;
        try {
          const row = JSON.parse(line);
          addRow(String(row.input ?? ""), String(row.target ?? ""));
        } catch (e) { /* the preview and the server report bad rows */ }
      }
    }
    if (!body.rows.length) for (let i = 0; i < 5; i++) addRow();
  }
  textarea.addEventListener("change", textToTable);
  document.querySelector("[data-add-row]").addEventListener("click", () => addRow());
  textToTable();

  // Preview: the server parses the text exactly as it will on submit.
  form.querySelectorAll("[data-preview]").forEach((button) => {
    button.addEventListener("click", async () => {
      const out = document.getElementById(button.dataset.previewOut);
      const data = new FormData();
      data.append("text", document.getElementById(button.dataset.preview).value);
      data.append("format", document.getElementById(button.dataset.previewFormat).value);
      const response = await fetch(form.dataset.previewUrl, {
        method: "POST", body: data, headers: { "X-CSRFToken": csrf },
      });
      const result = await response.json();
      out.innerHTML = "";
      const summary = document.createElement("p");
      summary.textContent = `${result.count} examples parsed` +
        (result.errors?.length ? `, ${result.errors.length} rows with errors:` : ".");
      out.appendChild(summary);
      if (result.errors?.length) {
        const list = document.createElement("ul");
        list.className = "errorlist";
        result.errors.forEach((e) => { const li = document.createElement("li"); li.textContent = e; list.appendChild(li); });
        out.appendChild(list);
      }
      if (result.rows?.length) {
        const preview = document.createElement("table");
        preview.className = "list";
        preview.innerHTML = "<thead><tr><th>#</th><th>Input</th><th>Target</th></tr></thead>";
        const tbody = document.createElement("tbody");
        result.rows.forEach((row, i) => {
          const tr = document.createElement("tr");
          [String(i + 1), row.input, row.target].forEach((v) => {
            const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
          });
          tbody.appendChild(tr);
        });
        preview.appendChild(tbody);
        out.appendChild(preview);
      }
    });
  });
})();
