// Playground: send inputs to a worker through the API, poll, show the outputs.
// Whatever happens, the status line says it in words: a failed request gives
// the hub's reason (such as the sweep's "no worker took it within 60 s: …"),
// and an answer that is not the API's JSON (a proxy's error page) its status.

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 700;

/** The status line for a playground request after ``waited`` seconds. */
export function statusText(job, waited) {
  if (job.status === "succeeded") return `done in ${waited.toFixed(1)} s`;
  if (job.status === "failed") {
    return `Failed: ${job.error_message || "the worker gave no reason"}`;
  }
  if (job.status === "cancelled") return "Cancelled.";
  if (job.status === "queued" && waited > 5) {
    return `waiting for a worker (${waited.toFixed(0)} s): they may be busy, or none is running`;
  }
  return `${job.status}…`;
}

/** The reason an error answer gives: the API's {"detail"} or field errors, else its status. */
export async function errorText(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: an HTML page from a proxy, or nothing at all.
  }
  const words = body && typeof body === "object" ? Object.values(body).flat(2) : [];
  const reasons = words.filter((word) => typeof word === "string" && word);
  if (reasons.length) return reasons.join(" ");
  return `The hub answered ${response.status} ${response.statusText}`.trim() + ".";
}

function showOutputs(list, job) {
  list.replaceChildren();
  job.inputs.forEach((input, i) => {
    const item = document.createElement("li");
    const question = document.createElement("div");
    question.className = "help";
    question.textContent = input;
    const answer = document.createElement("div");
    answer.textContent = job.outputs[i];
    item.append(question, answer);
    list.appendChild(item);
  });
}

function setUp(box) {
  const button = box.querySelector(".playground-run");
  if (!button || box.dataset.ready) return;
  box.dataset.ready = "1";
  const status = box.querySelector(".playground-status");
  const list = box.querySelector(".playground-outputs");
  const csrf = box.querySelector(".playground-csrf").value;

  function stop(text) {
    status.textContent = text;
    button.disabled = false;
  }

  async function poll(url, started) {
    let response;
    try {
      response = await fetch(url);
    } catch {
      status.textContent = "The hub cannot be reached; trying again…";
      setTimeout(() => poll(url, started), POLL_MS * 4);
      return;
    }
    if (!response.ok) {
      stop(await errorText(response));
      return;
    }
    const job = await response.json();
    status.textContent = statusText(job, (Date.now() - started) / 1000);
    if (job.status === "succeeded") showOutputs(list, job);
    if (FINAL.has(job.status)) {
      button.disabled = false;
      return;
    }
    setTimeout(() => poll(url, started), POLL_MS);
  }

  button.addEventListener("click", async () => {
    const inputs = box.querySelector(".playground-inputs").value.split("\n").filter((l) => l.trim());
    button.disabled = true;
    status.textContent = "sending…";
    let response;
    try {
      response = await fetch(box.dataset.apiUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ module: box.dataset.module, inputs }),
      });
    } catch {
      stop("The hub cannot be reached; try again.");
      return;
    }
    if (!response.ok) {
      stop(await errorText(response));
      return;
    }
    const body = await response.json();
    poll(body.url, Date.now());
  });
}

if (typeof document !== "undefined") {
  document.querySelectorAll(".playground").forEach(setUp);
}
