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

  // The candidate list is one stop for Tab (a roving tabindex): arrow keys,
  // Home and End move between the modules shown, space ticks one.
  const rows = Array.from(form.querySelectorAll(".pick-row"));
  const boxes = rows.map((r) => r.querySelector("input"));
  const counter = document.getElementById("module-count");
  const shownCounter = document.getElementById("module-shown");
  const filter = document.getElementById("module-filter");
  function count() {
    counter.textContent = boxes.filter((b) => b.checked).length;
    shownCounter.textContent = rows.filter((r) => !r.hidden).length;
  }
  function shownBoxes() {
    return boxes.filter((b) => !b.closest(".pick-row").hidden);
  }
  function makeCurrent(box) {
    boxes.forEach((b) => (b.tabIndex = b === box ? 0 : -1));
  }
  boxes.forEach((b) => {
    b.addEventListener("change", count);
    b.addEventListener("focus", () => makeCurrent(b));
    b.addEventListener("keydown", (event) => {
      const shown = shownBoxes();
      const at = shown.indexOf(b);
      const to = { ArrowDown: at + 1, ArrowRight: at + 1, ArrowUp: at - 1, ArrowLeft: at - 1,
        Home: 0, End: shown.length - 1 }[event.key];
      if (to === undefined) return;
      event.preventDefault();
      const next = shown[Math.max(0, Math.min(shown.length - 1, to))];
      makeCurrent(next);
      next.focus();
    });
  });
  makeCurrent(boxes.find((b) => b.checked) ?? boxes[0]);
  filter.addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.preventDefault();  // filtering, not submitting
  });
  filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    rows.forEach((r) => {
      const text = r.textContent.toLowerCase();
      r.hidden = !words.every((w) => text.includes(w));
    });
    const shown = shownBoxes();
    if (shown.length) makeCurrent(shown.find((b) => b.checked) ?? shown[0]);
    count();
  });
  function setShown(checked) {
    shownBoxes().forEach((b) => (b.checked = checked));
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

  function cell(value, what) {
    const td = document.createElement("td");
    const area = document.createElement("textarea");
    area.rows = 2;
    area.value = value;
    area.dataset.what = what;
    area.addEventListener("input", tableToText);
    td.appendChild(area);
    return td;
  }
  // Every row's fields and button say which example they belong to.
  function numberRows() {
    Array.from(body.rows).forEach((tr, i) => {
      tr.querySelectorAll("textarea").forEach((area) => {
        area.setAttribute("aria-label", `${area.dataset.what} of example ${i + 1}`);
      });
      tr.querySelector("button").setAttribute("aria-label", `Remove example ${i + 1}`);
    });
  }
  function addRow(input = "", target = "") {
    const tr = document.createElement("tr");
    tr.appendChild(cell(input, "Input"));
    tr.appendChild(cell(target, "Target"));
    const remove = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = "remove";
    button.addEventListener("click", () => { tr.remove(); numberRows(); tableToText(); });
    remove.appendChild(button);
    tr.appendChild(remove);
    body.appendChild(tr);
    numberRows();
  }
  function tableToText() {
    const lines = Array.from(body.rows)
      .map((tr) => tr.querySelectorAll("textarea"))
      .filter(([i, t]) => i.value.trim() || t.value.trim())
      .map(([i, t]) => JSON.stringify({ input: i.value, target: t.value }));
    textarea.value = lines.join("\n");
    formatSelect.value = "jsonl";
    synced = textarea.value;
    schedulePreview(textarea);
  }
  // The text the table shows; the table is only rebuilt when the text changed.
  let synced = null;
  function textToTable() {
    if (textarea.value === synced) return;
    synced = textarea.value;
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
  document.querySelector("[data-add-row]").addEventListener("click", () => addRow());

  // Preview: the server parses the text exactly as it will on submit. It runs
  // shortly after each edit or paste (and the table follows the text then), so
  // nothing moves under the pointer when the Preview button is pressed.
  const PREVIEW_DELAY_MS = 400;
  const previewButtons = new Map();
  const timers = new Map();
  function schedulePreview(source) {
    const button = previewButtons.get(source.id);
    if (!button) return;
    clearTimeout(timers.get(source.id));
    timers.set(source.id, setTimeout(() => {
      if (source === textarea) textToTable();
      runPreview(button);
    }, PREVIEW_DELAY_MS));
  }
  async function runPreview(button) {
    const out = document.getElementById(button.dataset.previewOut);
    const data = new FormData();
    data.append("text", document.getElementById(button.dataset.preview).value);
    data.append("format", document.getElementById(button.dataset.previewFormat).value);
    let result;
    try {
      const response = await fetch(form.dataset.previewUrl, {
        method: "POST", body: data, headers: { "X-CSRFToken": csrf },
      });
      result = await response.json();
    } catch (e) {
      out.replaceChildren(Object.assign(document.createElement("p"), {
        className: "errorlist", textContent: "The preview could not reach the hub; the examples are checked again on Compose.",
      }));
      return;
    }
    out.innerHTML = "";
    const summary = document.createElement("p");
    const parsed = `${result.count} example${result.count === 1 ? "" : "s"} read`;
    summary.textContent = parsed +
      (result.errors?.length ? `; ${result.errors.length} row${result.errors.length === 1 ? " has an error" : "s have errors"}:` : ".");
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
      preview.innerHTML = '<caption class="visually-hidden">Examples as the hub reads them</caption>' +
        '<thead><tr><th scope="col">#</th><th scope="col">Input</th><th scope="col">Target</th></tr></thead>';
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
  }
  form.querySelectorAll("[data-preview]").forEach((button) => {
    const source = document.getElementById(button.dataset.preview);
    const format = document.getElementById(button.dataset.previewFormat);
    previewButtons.set(source.id, button);
    source.addEventListener("input", () => schedulePreview(source));
    format.addEventListener("change", () => schedulePreview(source));
    button.addEventListener("click", () => {
      clearTimeout(timers.get(source.id));
      runPreview(button);
      if (source === textarea) textToTable();
    });
  });
  textToTable();
  if (textarea.value.trim()) runPreview(previewButtons.get(textarea.id));
})();
