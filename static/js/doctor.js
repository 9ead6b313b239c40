// The doctor's page: the patient's masked avatar (the relay sends nothing else), the
// live measurements with short traces, the guided examination, audio both ways, the
// doctor's optional camera, recording, and the end of the consultation.
import { Call, api, apiUrl, roomFromLocation, setStatus, toggleMute } from "./call.js";
import { ExamPanel } from "./exam_panel.js";

const $ = (id) => document.getElementById(id);
const status = $("status");
let link = null; // roomFromLocation(), in main()
const HISTORY = 100; // samples (~10 s at 10 Hz)

// [key, label, unit, smallest vertical span of its trace: tracking noise stays small]
// (dmask_rt/measure documents each: MRD = margin-reflex distance, lid margin to pupil centre.)
const MEASURES = [
  ["head_yaw_deg", "Head yaw", "°", 30], ["head_pitch_deg", "Head pitch", "°", 30], ["head_roll_deg", "Head roll", "°", 30],
  ["mrd1_r_mm", "Right MRD1", " mm", 4], ["mrd1_l_mm", "Left MRD1", " mm", 4],
  ["mrd2_r_mm", "Right MRD2", " mm", 4], ["mrd2_l_mm", "Left MRD2", " mm", 4],
  ["fissure_height_r_mm", "Right fissure height", " mm", 6], ["fissure_height_l_mm", "Left fissure height", " mm", 6],
  ["openness_r", "Right openness", "", 1], ["openness_l", "Left openness", "", 1],
  ["eye_r_horizontal_deg", "Right eye horizontal", "°", 30], ["eye_r_vertical_deg", "Right eye vertical", "°", 30],
  ["eye_l_horizontal_deg", "Left eye horizontal", "°", 30], ["eye_l_vertical_deg", "Left eye vertical", "°", 30],
  // Deviation beyond the convergence that looking into the camera needs (+ = eso / right hyper).
  ["deviation_horizontal_pd", "Horizontal deviation R−L", " PD", 20], ["deviation_vertical_pd", "Vertical deviation R−L", " PD", 20],
  // After a guided exam: the same in the patient's calibrated eye model (rows hidden until then).
  ["calibrated_deviation_horizontal_pd", "Horizontal deviation, calibrated", " PD", 20, true],
  ["calibrated_deviation_vertical_pd", "Vertical deviation, calibrated", " PD", 20, true],
];
const rows = new Map();

function buildTable() {
  for (const [key, label, unit, minSpan, afterExam] of MEASURES) {
    const tr = document.createElement("tr");
    if (afterExam) tr.className = "hidden";
    const th = document.createElement("th"); th.scope = "row"; th.textContent = label;
    const value = document.createElement("td"); value.className = "value"; value.textContent = "–";
    const traceCell = document.createElement("td");
    const canvas = document.createElement("canvas"); canvas.className = "trace"; canvas.width = 120; canvas.height = 28;
    canvas.setAttribute("aria-hidden", "true");
    traceCell.append(canvas);
    tr.append(th, value, traceCell);
    $("values").append(tr);
    rows.set(key, { row: tr, value, canvas, unit, minSpan, history: [] });
  }
}

function drawTrace(canvas, history, minSpan) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const numbers = history.filter((v) => v !== null);
  if (numbers.length < 2) return;
  let lo = Math.min(...numbers), hi = Math.max(...numbers);
  const span = Math.max(hi - lo, minSpan);
  const mid = (hi + lo) / 2; lo = mid - span / 2;
  ctx.strokeStyle = "#1f5fa8"; ctx.lineWidth = 1.5; ctx.beginPath();
  let pen = false;
  history.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    const x = (i / (HISTORY - 1)) * canvas.width;
    const y = canvas.height - 2 - ((v - lo) / span) * (canvas.height - 4);
    if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    pen = true;
  });
  ctx.stroke();
}

function showParams(message) {
  $("face-note").textContent = message.face ? "Face tracked." : "No face tracked: the patient sees a prompt to look at the camera.";
  for (const [key, row] of rows) {
    const v = message.values ? message.values[key] : null;
    if (v != null) row.row.classList.remove("hidden");
    row.history.push(v ?? null);
    if (row.history.length > HISTORY) row.history.shift();
    row.value.textContent = v == null ? "–" : (row.unit ? `${v.toFixed(1)}${row.unit}` : v.toFixed(2));
    drawTrace(row.canvas, row.history, row.minSpan);
  }
}

// Recording and ending the consultation are for a signed-in clinician (the link alone is not enough).
function signInNote(what) {
  const li = document.createElement("li");
  const a = document.createElement("a"); a.href = "/login"; a.target = "_blank"; a.textContent = "Sign in";
  li.append(a, ` ${what}, then reload this page.`);
  return li;
}

async function refreshRecordings() {
  const response = await api(link, "recordings");
  const list = $("recordings");
  if (response.status === 401) { list.replaceChildren(signInNote("to record and to see the recordings")); return; }
  if (!response.ok) return;
  list.replaceChildren();
  for (const file of await response.json()) {
    const a = document.createElement("a");
    a.href = file.url; a.textContent = `${file.name} (${Math.round(file.size / 1024)} KiB)`; a.download = file.name;
    const li = document.createElement("li"); li.append(a); list.append(li);
  }
}

function showRecording(active) {
  const button = $("record");
  button.setAttribute("aria-pressed", String(active));
  button.textContent = active ? "Stop recording" : "Start recording";
  $("rec-audio").disabled = active;
}

async function main() {
  link = await roomFromLocation();
  buildTable();
  let mic = null, camera = null;
  try {
    [mic] = (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks();
  } catch (error) { /* listening only */ }
  toggleMute($("mute"), mic, "microphone");
  let cameraSender = null;
  let patientHere = false, connected = false, face = null;
  let resumed = false; // the relay restarted while recording: the recording goes on in a new file
  let exam = null;
  let closeupShown = false;

  const show = () => {
    if (!connected) return;
    const note = resumed ? " Recording resumed in a new file after the relay restarted." : "";
    if (!patientHere) setStatus(status, "waiting", "Waiting for the patient to join." + note);
    else if (face === false) setStatus(status, "noface", "Live — the patient's face is not found." + note);
    else setStatus(status, "live", "Live — masked video." + note);
  };

  const call = new Call(link, {
    setup(pc) {
      const transceivers = [
        pc.addTransceiver("video", { direction: "recvonly" }),          // the masked avatar
        pc.addTransceiver(mic || "audio", { direction: "sendrecv" }),
        pc.addTransceiver(camera || "video", { direction: "sendonly" }), // my camera, when shared
        pc.addTransceiver("video", { direction: "recvonly" }),          // the eye close-up, when shown
      ];
      cameraSender = transceivers[2].sender;
      return transceivers;
    },
    onTrack(event, transceivers) {
      const media = new MediaStream([event.track]);
      if (event.transceiver === transceivers[0]) $("masked").srcObject = media;
      else if (event.transceiver === transceivers[3]) $("closeup").srcObject = media;
      else if (event.track.kind === "audio") $("remote-audio").srcObject = media;
    },
    onMessage(message) {
      if (message.type === "params") { face = message.face; showParams(message); show(); }
      if (message.type === "peers") {
        patientHere = message.patient; show();
        call.send({ type: "closeup", on: closeupShown }); // the relay forgets it with a connection
      }
      if (message.type === "recording") {
        showRecording(message.active);
        resumed = message.active && message.resumed === true;
        show();
        refreshRecordings();
      }
      if (message.type === "exam") exam.onMessage(message);
    },
    onState(state, detail) {
      connected = state === "connected";
      if (state === "connected") show();
      else if (state === "connecting") setStatus(status, "connecting", "Connecting…");
      else if (state === "reconnecting") setStatus(status, "reconnecting", detail ? `Reconnecting: ${detail}` : "Reconnecting…");
      else setStatus(status, state, detail || "The consultation has ended.");
    },
  });

  exam = new ExamPanel((message) => call.send(message), (name) => apiUrl(link, `recordings/${encodeURIComponent(name)}`),
    refreshRecordings);
  $("show-closeup").addEventListener("click", (event) => {
    closeupShown = !closeupShown;
    call.send({ type: "closeup", on: closeupShown });
    $("closeup").classList.toggle("hidden", !closeupShown);
    event.currentTarget.setAttribute("aria-pressed", String(closeupShown));
    event.currentTarget.textContent = closeupShown ? "Hide eye close-up" : "Show eye close-up";
  });
  $("share-camera").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    if (camera) {
      camera.stop(); camera = null;
      await cameraSender?.replaceTrack(null);
      $("own-camera").classList.add("hidden");
    } else {
      try {
        [camera] = (await navigator.mediaDevices.getUserMedia({ video: true })).getVideoTracks();
      } catch (error) { return; }
      await cameraSender?.replaceTrack(camera);
      $("own-camera").srcObject = new MediaStream([camera]);
      $("own-camera").classList.remove("hidden");
    }
    button.setAttribute("aria-pressed", String(Boolean(camera)));
    button.textContent = camera ? "Stop showing my camera" : "Show my camera to the patient";
  });

  $("record").addEventListener("click", async () => {
    const start = $("record").getAttribute("aria-pressed") !== "true";
    const response = await api(link, "recording", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ action: start ? "start" : "stop", audio: $("rec-audio").checked }),
    });
    if (response.ok) showRecording((await response.json()).recording);
    refreshRecordings();
  });

  $("end").addEventListener("click", async () => {
    const response = await api(link, "", { method: "DELETE" });
    if (response.status === 401) { $("recordings").replaceChildren(signInNote("to end the consultation")); return; }
    call.end("ended", "You ended the consultation. Recordings stay in the relay's recordings folder.");
  });
  window.addEventListener("pagehide", () => call.leave());
  refreshRecordings();
  await call.start();
}

main();
