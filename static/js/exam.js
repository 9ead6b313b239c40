// The patient's side of the guided eye examination: the fixation target, the spoken and
// written instructions, pause and stop. This page is the exam's clock: it tells the relay
// when each step's target shows and when the step has run its time (server/exam.py).
//
// The target's place is a fraction of the exam stage, which fills the screen (full screen
// when the browser allows it); the relay turns it into millimetres from the page's size,
// the screen's scale (a bank card matched on screen, or the CSS pixel's nominal size) and
// where the camera sits (the patient's answer, or above the middle).

const CARD_MM = [85.6, 53.98];     // ISO/IEC 7810 ID-1 (bank cards): long and short side
const NOMINAL_MM_PER_PX = 25.4 / 96; // a CSS pixel by definition; real screens differ by +-30%
const BEZEL_MM = 6;                // a laptop's camera above the picture's top edge
const MIN_SIDE_PX = 280;           // smaller, and the targets crowd each other (phones are ~360)

const $ = (id) => document.getElementById(id);

export class PatientExam {
  // send(message): to the relay; false when the connection is down.
  constructor(send) {
    // Every message carries the page's clock: the relay times the steps by it, not by arrival.
    this.send = (message) => send({ ...message, t: performance.now() / 1000 });
    this.protocol = [];
    this.queue = [];
    this.position = 0;
    this.running = false;
    this.paused = false;
    this.frame = null;
    this.cameraConfirmed = false;
    this.cardPx = null;
    this.stage = $("exam-stage");
    this.target = $("exam-target");
    this.bindControls();
  }

  bindControls() {
    $("exam-begin").addEventListener("click", () => this.begin());
    $("exam-decline").addEventListener("click", () => this.quit("stop", "You chose not to do the examination now."));
    $("exam-pause").addEventListener("click", () => this.pause());
    $("exam-continue").addEventListener("click", () => this.resume());
    for (const id of ["exam-stop", "exam-stop-paused"]) {
      $(id).addEventListener("click", () => this.quit("stop", "You stopped the examination. Your doctor can start it again."));
    }
    $("exam-retry-size").addEventListener("click", () => this.begin());
    for (const input of document.querySelectorAll("input[name=camera]")) {
      // A click on the option already chosen confirms it too (no "change" then).
      for (const type of ["click", "change"]) input.addEventListener(type, () => { this.cameraConfirmed = true; });
    }
    // A phone is narrower than a card: there the card is held upright and its short side matched.
    const slider = $("card-size");
    const showCard = () => {
      const [across, along] = this.cardUpright() ? [CARD_MM[1], CARD_MM[0]] : CARD_MM;
      const px = Number(slider.value);
      $("card-box").style.width = `${px}px`;
      $("card-box").style.height = `${px * along / across}px`;
      $("card-upright").classList.toggle("hidden", !this.cardUpright());
      return px;
    };
    slider.max = String(Math.min(700, window.innerWidth - 40));
    showCard();
    slider.addEventListener("input", () => { this.cardPx = showCard(); });
  }

  // The relay's word: {"action": "start", "protocol", "steps"} or {"action": "stop"}.
  onMessage(message) {
    if (message.action === "start") {
      this.protocol = message.protocol;
      this.queue = message.steps;
      this.position = 0;
      this.show("exam-intro");
    } else if (message.action === "stop") {
      this.close("Your doctor stopped the examination.");
    }
  }

  // The connection dropped: the relay ends the exam and keeps what was measured.
  onConnectionLost() {
    if ($("exam").classList.contains("hidden")) return;
    this.close("The connection was lost, so the examination stopped. Your doctor can start it again.");
  }

  show(part) {
    $("exam").classList.remove("hidden");
    for (const id of ["exam-intro", "exam-stage", "exam-paused", "exam-small"]) $(id).classList.toggle("hidden", id !== part);
  }

  async begin() {
    if (document.fullscreenEnabled && !document.fullscreenElement) {
      try { await $("exam").requestFullscreen(); } catch (error) { /* the window, then */ }
    }
    this.show("exam-stage");
    await new Promise((resolve) => requestAnimationFrame(resolve)); // the stage's size after the switch
    const { width, height } = this.stage.getBoundingClientRect();
    if (width < MIN_SIDE_PX || height < MIN_SIDE_PX) {
      this.send({ type: "exam", event: "too_small", width_px: width, height_px: height });
      $("exam-small-size").textContent = `${Math.round(width)} x ${Math.round(height)}`;
      this.show("exam-small");
      return;
    }
    this.send({ type: "exam", event: "screen", ...this.screen(width, height) });
    this.running = true;
    this.paused = false;
    this.runStep();
  }

  // The stage's size and scale, and the camera's place relative to its top-centre (mm;
  // x toward the patient's right, y above the top edge).
  screen(width, height) {
    const mmPerPx = this.cardPx ? (this.cardUpright() ? CARD_MM[1] : CARD_MM[0]) / this.cardPx : NOMINAL_MM_PER_PX;
    const where = document.querySelector("input[name=camera]:checked")?.value || "middle";
    const widthMm = width * mmPerPx, heightMm = height * mmPerPx;
    // Outside full screen the browser's own bars sit between the camera and the stage.
    const chromePx = document.fullscreenElement ? 0 : Math.max(0, window.outerHeight - window.innerHeight);
    const above = BEZEL_MM + chromePx * mmPerPx;
    const place = {
      middle: [0, above], left: [-widthMm / 2, above], right: [widthMm / 2, above],
      below: [0, -(heightMm + BEZEL_MM)],
    }[where];
    return {
      width_px: width, height_px: height, mm_per_px: mmPerPx,
      mm_per_px_source: this.cardPx ? "card" : "assumed",
      camera_x_mm: place[0], camera_y_mm: place[1],
      camera_source: this.cameraConfirmed ? "confirmed" : "assumed",
    };
  }

  cardUpright() { return window.innerWidth < 480; }

  get step() { return this.protocol[this.queue[this.position]]; }

  runStep() {
    const step = this.step;
    if (!step) return this.finish();
    $("exam-instruction").textContent = step.instruction;
    $("exam-progress").textContent = `Step ${this.position + 1} of ${this.queue.length}: ${step.label}`;
    this.place(step, 0);
    this.target.dataset.step = step.name;
    this.target.classList.toggle("closing", step.kind === "closure");
    speak(step.instruction);
    const started = performance.now();
    this.send({ type: "exam", event: "step", index: step.index });
    const tick = (now) => {
      if (!this.running || this.paused) return;
      const t = (now - started) / 1000;
      this.place(step, t);
      if (t < step.duration_s) { this.frame = requestAnimationFrame(tick); return; }
      this.send({ type: "exam", event: "step_done", index: step.index });
      if (step.kind === "closure") speak("Open your eyes.");
      this.position += 1;
      this.runStep();
    };
    this.frame = requestAnimationFrame(tick);
  }

  // The target at the step's path position t seconds in (piecewise linear keyframes).
  place(step, t) {
    const path = step.path;
    let [u, v] = [path[path.length - 1][1], path[path.length - 1][2]];
    for (let k = 0; k + 1 < path.length; k++) {
      const [t0, u0, v0] = path[k], [t1, u1, v1] = path[k + 1];
      if (t <= t0) { [u, v] = [u0, v0]; break; }
      if (t <= t1) { const a = t1 > t0 ? (t - t0) / (t1 - t0) : 1; [u, v] = [u0 + a * (u1 - u0), v0 + a * (v1 - v0)]; break; }
    }
    this.target.style.left = `${u * 100}%`;
    this.target.style.top = `${v * 100}%`;
  }

  pause() {
    if (!this.running || this.paused) return;
    this.paused = true;
    cancelAnimationFrame(this.frame);
    this.send({ type: "exam", event: "pause" });
    this.show("exam-paused");
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    this.send({ type: "exam", event: "resume" });
    this.show("exam-stage");
    this.runStep(); // the paused step again, from its start
  }

  finish() {
    this.send({ type: "exam", event: "done" });
    speak("The examination is complete. Thank you.");
    this.close("The examination is complete. Thank you.");
  }

  quit(event, note) {
    this.send({ type: "exam", event });
    this.close(note);
  }

  close(note) {
    this.running = false;
    this.paused = false;
    cancelAnimationFrame(this.frame);
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    $("exam").classList.add("hidden");
    $("exam-note").textContent = note;
  }
}

function speak(text) {
  if (!("speechSynthesis" in window) || !$("exam-speak").checked) return;
  try {
    speechSynthesis.cancel();
    speechSynthesis.speak(new SpeechSynthesisUtterance(text));
  } catch (error) { /* written instructions remain */ }
}
