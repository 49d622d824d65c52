// Playground: send inputs to a worker through the API, poll, show the outputs.
document.querySelectorAll(".playground").forEach((box) => {
  const button = box.querySelector(".playground-run");
  if (!button || box.dataset.ready) return;
  box.dataset.ready = "1";
  const status = box.querySelector(".playground-status");
  const list = box.querySelector(".playground-outputs");
  const csrf = box.querySelector(".playground-csrf").value;

  async function poll(url, started) {
    const job = await (await fetch(url)).json();
    if (job.status === "succeeded") {
      status.textContent = `done in ${((Date.now() - started) / 1000).toFixed(1)} s`;
      list.innerHTML = "";
      job.inputs.forEach((input, i) => {
        const li = document.createElement("li");
        const q = document.createElement("div"); q.className = "help"; q.textContent = input;
        const a = document.createElement("div"); a.textContent = job.outputs[i];
        li.append(q, a);
        list.appendChild(li);
      });
      button.disabled = false;
      return;
    }
    if (job.status === "failed") {
      status.textContent = job.error_message;
      button.disabled = false;
      return;
    }
    const waited = (Date.now() - started) / 1000;
    status.textContent = job.status === "queued" && waited > 5
      ? `waiting for a worker (${waited.toFixed(0)} s): they may be busy, or none is running`
      : `${job.status}…`;
    setTimeout(() => poll(url, started), 700);
  }

  button.addEventListener("click", async () => {
    const inputs = box.querySelector(".playground-inputs").value.split("\n").filter((l) => l.trim());
    button.disabled = true;
    status.textContent = "sending…";
    const response = await fetch(box.dataset.apiUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ module: box.dataset.module, inputs }),
    });
    const body = await response.json();
    if (!response.ok) {
      status.textContent = Object.values(body).flat().join(" ");
      button.disabled = false;
      return;
    }
    poll(body.url, Date.now());
  });
});
