// The upload form, enhanced: a preview of the adapter as soon as files are
// chosen, then an upload to the API with a progress bar. Without JavaScript
// the form posts as a plain multipart form and the page shows the result.

import { previewAdapter } from "./adapter-preview.js";
import { clearErrors, errorMessages, filledFields, showErrors } from "./form-api.js";

const form = document.getElementById("upload-form");
const fileInput = form.querySelector("input[type=file]");
const baseSelect = form.querySelector("select[name=base_model]");
const nameInput = form.querySelector("input[name=name]");
const preview = document.getElementById("preview");
const progress = document.getElementById("progress");
const progressBar = progress.querySelector("progress");
const progressText = progress.querySelector("span");
const problems = document.getElementById("upload-problems");
const submit = form.querySelector("button[type=submit]");
const shapes = JSON.parse(document.getElementById("base-model-shapes").textContent);
const maxBytes = Number(form.dataset.maxBytes);

function megabytes(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function show(element, items) {
  element.replaceChildren(...items.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
  element.hidden = items.length === 0;
}

function row(label, value) {
  const dt = Object.assign(document.createElement("dt"), { textContent: label });
  const dd = Object.assign(document.createElement("dd"), { textContent: value });
  return [dt, dd];
}

async function refreshPreview() {
  const files = fileInput.files;
  show(problems, []);
  if (!files.length) {
    preview.hidden = true;
    return;
  }
  const total = Array.from(files).reduce((sum, file) => sum + file.size, 0);
  try {
    const found = await previewAdapter(files, shapes, baseSelect.value);
    if (!baseSelect.value && found.baseModel && shapes[found.baseModel]) {
      baseSelect.value = found.baseModel;
      return refreshPreview();
    }
    if (!nameInput.value && found.archive) {
      nameInput.value = found.archive.replace(/\.zip$/i, "").replace(/[^A-Za-z0-9._-]+/g, "-");
    }
    const list = preview.querySelector("dl");
    list.replaceChildren(
      ...row("Base model", baseSelect.value || found.baseModel || "not named: choose one"),
      ...row("Task type", found.taskType ?? "from the base model"),
      ...row("Rank (r)", found.rank),
      ...row("lora_alpha", found.loraAlpha),
      ...row("Target modules", found.targetModules.join(", ") || "—"),
      ...row("Adapted layers", found.adaptedModuleCount || "—"),
      ...row(
        "Parameters",
        found.weightsFormat === "pickle" ? "counted on upload (adapter_model.bin)" : found.parameterCount.toLocaleString(),
      ),
      ...row("Weights", found.weightsFormat === "pickle" ? "PyTorch pickle: checked and converted to safetensors on upload" : (found.dtypes.join(", ") || "missing")),
      ...row("Model card", found.card ? "README.md included" : "one will be written for you"),
      ...row("Upload size", megabytes(total)),
    );
    preview.hidden = false;
    const notes = [...found.problems];
    if (!found.weightsFormat) notes.push("adapter_model.safetensors (or adapter_model.bin) is missing");
    if (total > maxBytes) notes.push(`The files total ${megabytes(total)}, over the limit of ${megabytes(maxBytes)}`);
    show(problems, notes);
  } catch (error) {
    preview.hidden = true;
    show(problems, [error.message]);
  }
}

function resetProgress() {
  progress.hidden = true;
  progressBar.value = 0;
  progressBar.max = 1;
  progressText.textContent = "";
}

function showRefusal(request) {
  const body = request.response;
  const names = { files: Array.from(fileInput.files, (file) => file.name) };
  const messages = errorMessages(body, { itemNames: names, itemLabels: { tags: "Tag" } });
  if (!Object.keys(messages).length) {
    const answer = [request.status, request.statusText].filter(Boolean).join(" ");
    messages.detail = [`The upload failed: the hub answered ${answer}.`];
  }
  showErrors(form, messages, problems);
}

function upload(event) {
  event.preventDefault();
  const total = Array.from(fileInput.files).reduce((sum, file) => sum + file.size, 0);
  if (total > maxBytes) {
    showErrors(form, { files: [`The files total ${megabytes(total)}, over the limit of ${megabytes(maxBytes)}.`] }, problems);
    return;
  }
  const request = new XMLHttpRequest();
  request.open("POST", form.dataset.apiUrl);
  request.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
  request.setRequestHeader("Accept", "application/json");
  request.responseType = "json";
  request.upload.addEventListener("progress", (progressEvent) => {
    if (!progressEvent.lengthComputable) return;
    progressBar.max = progressEvent.total;
    progressBar.value = progressEvent.loaded;
    progressText.textContent = `${megabytes(progressEvent.loaded)} of ${megabytes(progressEvent.total)}`;
  });
  request.upload.addEventListener("load", () => {
    progressText.textContent = "Checking the adapter…";
  });
  request.addEventListener("load", () => {
    const body = request.response ?? {};
    if (request.status === 201) {
      window.location.assign(body.html_url);
      return;
    }
    submit.disabled = false;
    resetProgress();
    if (request.status === 409) {
      const item = document.createElement("li");
      const link = Object.assign(document.createElement("a"), { href: body.existing, textContent: "open it" });
      item.append(`${body.detail} `, link);
      problems.replaceChildren(item);
      problems.hidden = false;
    } else {
      showRefusal(request);
    }
  });
  request.addEventListener("error", () => {
    submit.disabled = false;
    resetProgress();
    show(problems, ["The connection broke during the upload; try again."]);
  });
  submit.disabled = true;
  clearErrors(form, problems);
  progressText.textContent = "Starting the upload…";
  progress.hidden = false;
  request.send(filledFields(new FormData(form)));
}

fileInput.addEventListener("change", refreshPreview);
baseSelect.addEventListener("change", refreshPreview);
form.addEventListener("submit", upload);
