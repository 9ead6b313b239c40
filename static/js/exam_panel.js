// The doctor's examination panel: start, stop and repeat the guided exam, follow its
// steps, and read its figures as they come (server/exam.py sends them after every step;
// dmask_rt/exam/analysis.py computes them).

const $ = (id) => document.getElementById(id);

export class ExamPanel {
  // send(message): to the relay; fileUrl(name): a download link for a file of this room.
  constructor(send, fileUrl, onFiles) {
    Object.assign(this, { send, fileUrl, onFiles });
    this.state = "idle";
    this.notMeasured = [];
    $("exam-start").addEventListener("click", () => this.send({ type: "exam", action: "start" }));
    $("exam-stop").addEventListener("click", () => this.send({ type: "exam", action: "stop" }));
    $("exam-repeat").addEventListener("click", () => this.send({ type: "exam", action: "repeat", steps: this.notMeasured }));
  }

  onMessage(message) {
    this.state = message.state;
    const active = ["waiting", "running", "paused"].includes(message.state);
    $("exam-status").textContent = message.message || "No examination yet.";
    $("exam-status").dataset.state = message.state;
    $("exam-start").disabled = active;
    $("exam-start").textContent = message.state === "idle" ? "Start examination" : "Start a new examination";
    $("exam-stop").disabled = !active;
    const progress = $("exam-progress");
    progress.max = message.steps_total;
    if (message.step !== null && message.step !== undefined) progress.value = message.step;
    if (message.state === "done") progress.value = progress.max;
    const results = message.results;
    this.notMeasured = results ? notMeasured(results) : [];
    $("exam-repeat").classList.toggle("hidden", active || this.notMeasured.length === 0);
    $("exam-repeat").textContent = `Repeat ${this.notMeasured.length} step${this.notMeasured.length === 1 ? "" : "s"} not measured`;
    if (results) $("exam-results").replaceChildren(...renderResults(results));
    this.showFiles(message.files || []);
  }

  showFiles(files) {
    const list = $("exam-files");
    list.replaceChildren();
    for (const name of files) {
      const a = document.createElement("a");
      a.href = this.fileUrl(name); a.download = name;
      a.textContent = name.endsWith(".report.html") ? `Report (${name})` : name;
      const li = document.createElement("li"); li.append(a); list.append(li);
    }
    if (files.length && this.onFiles) this.onFiles();
  }
}

// Step indices the exam could not measure (face lost, stopped, not reached).
function notMeasured(results) {
  return (results.steps || []).filter((s) => s.status !== "measured").map((s) => s.index);
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

const fmt = (value, digits = 1) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
const pm = (item, digits = 1) => (item && item.value !== null && item.value !== undefined ? `${fmt(item.value, digits)} ± ${fmt(item.sd, digits)}` : "–");

// The nine gaze positions as ophthalmologists chart them: seen from the examiner, so the
// patient's right gaze is on the chart's left.
const CHART = [["up_right", "up", "up_left"], ["right", "primary", "left"], ["down_right", "down", "down_left"]];

function renderResults(results) {
  const out = [];
  for (const warning of results.warnings || []) out.push(el("p", warning, "warning"));
  if (!results.calibrated) {
    out.push(el("p", "The deviation between the eyes is not calibrated yet: it needs the cover steps.", "note"));
  }
  const grid = results.nine_gaze || {};
  const table = el("table", undefined, "nine-gaze");
  table.append(el("caption", "Deviation in prism dioptres (± 1 sd), as seen facing the patient"));
  for (const row of CHART) {
    const tr = document.createElement("tr");
    for (const position of row) {
      const cell = grid[position];
      const td = el("td");
      td.dataset.position = position;
      td.append(el("div", position.replace("_", " "), "where"));
      if (!cell || cell.status !== "measured" || !cell.deviation) {
        td.append(el("div", cell ? cell.status : "not reached", "missing"));
      } else {
        td.append(el("div", cell.deviation.words, "deviation"));
        td.append(el("div", `H ${pm(cell.deviation.horizontal_pd)} · V ${pm(cell.deviation.vertical_pd)}`, "spread"));
      }
      tr.append(td);
    }
    table.append(tr);
  }
  out.push(table);
  const findings = results.findings || [];
  if (findings.length) {
    const list = el("ul", undefined, "findings");
    for (const finding of findings) list.append(el("li", finding));
    out.push(list);
  }
  return out;
}
