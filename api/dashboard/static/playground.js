// The playground: one POST per model picked, all at once, each answer streaming into its own column.
// The server answers with server-sent events (`chunk` {text}, then `done` {...} or `error` {code, message}), or with a
// JSON error {"error": {"message"}} before the stream starts. It is a POST, so fetch + ReadableStream, not
// EventSource. Text from the server or the user only ever goes in through textContent.
"use strict";

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

function numberOrNull(value) {
  return value.trim() === "" ? null : Number(value);
}

function newColumn(model) {
  const column = document.getElementById("playground-column").content.firstElementChild.cloneNode(true);
  column.querySelector(".column-model").textContent = model;
  document.getElementById("playground-columns").append(column);
  return {
    answer: column.querySelector(".column-answer"),
    status(text, failed = false) {
      const line = column.querySelector(".column-status");
      line.textContent = text;
      line.className = failed ? "column-status error" : "column-status muted";
    },
  };
}

function describeDone(done) {
  const parts = [`${done.tokens ?? "?"} tokens`, `${done.latency.toFixed(2)} s`];
  if (done.cost !== null) parts.push(`$${done.cost.toFixed(6)}`);
  if (done.finish_reason) parts.push(`finish: ${done.finish_reason}`);
  return `${parts.join(" · ")} · request ${done.request_id}`;
}

// Splits the text read so far into complete events; returns what is left of an unfinished one.
function takeEvents(buffer, onEvent) {
  const blocks = buffer.split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (data.length) onEvent(name, JSON.parse(data.join("\n")));
  }
  return rest;
}

async function errorMessage(response) {
  try {
    return (await response.json()).error.message;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function streamInto(column, url, body, signal) {
  const response = await fetch(url, {
    method: "POST", signal, credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrfToken()},
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    column.status(await errorMessage(response), true);
    return;
  }
  column.status("streaming…");
  let finished = false;
  const onEvent = (name, payload) => {
    if (name === "chunk") column.answer.textContent += payload.text;
    else if (name === "done") column.status(describeDone(payload));
    else if (name === "error") column.status(`${payload.code}: ${payload.message}`, true);
    finished = finished || name === "done" || name === "error";
  };
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer = takeEvents(buffer + value, onEvent);
  }
  if (!finished) column.status("The stream ended before the answer did.", true);
}

function setUp() {
  const form = document.getElementById("playground");
  const stop = document.getElementById("playground-stop");
  const message = document.getElementById("playground-message");
  let controller = null;
  stop.addEventListener("click", () => controller?.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const models = data.getAll("model");
    message.textContent = models.length ? "" : "Pick at least one model.";
    if (!models.length) return;
    document.getElementById("playground-columns").replaceChildren();
    controller?.abort();
    controller = new AbortController();
    const signal = controller.signal;
    const shared = {
      system: data.get("system"), message: data.get("message"),
      max_tokens: numberOrNull(data.get("max_tokens")), temperature: numberOrNull(data.get("temperature")),
    };
    stop.disabled = false;
    await Promise.all(models.map((model) => {
      const column = newColumn(model);
      return streamInto(column, form.dataset.streamUrl, {...shared, model}, signal).catch((error) => {
        column.status(error.name === "AbortError" ? "Stopped." : `The request failed: ${error.message}`, true);
      });
    }));
    if (signal === controller.signal) stop.disabled = true;
  });
}

document.addEventListener("DOMContentLoaded", setUp);
