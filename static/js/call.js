// One side of a consultation: the WebRTC connection to the relay, with reconnects.
//
// Non-trickle signaling: the offer is posted once all ICE candidates are gathered and
// the relay answers with all of its own. The relay's "dmask" data channel carries
// JSON messages (status, peers, params, recording, exam), and the exam's back.

// This page's room, role and token. The link carries the token after "#", which is never
// sent to the relay nor in a Referer; it is taken out of the address bar at once and kept
// in this tab's sessionStorage, so that a reload still has it. `csrf`: the clinician's
// CSRF token when this browser is signed in (its state-changing calls need it).
export async function roomFromLocation() {
  const match = location.pathname.match(/^\/room\/([^/]+)\/(patient|doctor)$/);
  const link = { room: match ? match[1] : "", role: match ? match[2] : "", token: "", csrf: "" };
  const key = `dmask-room:${link.room}:${link.role}`;
  if (location.hash.length > 1) {
    sessionStorage.setItem(key, decodeURIComponent(location.hash.slice(1)));
    history.replaceState(null, "", location.pathname);
  }
  link.token = sessionStorage.getItem(key) || "";
  const session = await fetch("/api/session").then((r) => r.json()).catch(() => ({}));
  if (session.signed_in) link.csrf = session.csrf;
  return link;
}

// The room's API URL for `path` ("" is the room itself): no token in it.
export function apiUrl(link, path) {
  return `/api/rooms/${encodeURIComponent(link.room)}${path ? `/${path}` : ""}`;
}

// fetch() of the room's API with the token (and the CSRF token, if signed in) in headers.
export function api(link, path, init = {}) {
  const headers = { "X-Room-Token": link.token, ...(init.headers || {}) };
  if (link.csrf) headers["X-CSRF-Token"] = link.csrf;
  return fetch(apiUrl(link, path), { ...init, headers });
}

// With TURN relay only, an offer without a relay candidate cannot connect: say why.
const TURN_REFUSED = "the TURN relay server refused this page's credentials (expired or wrong): " +
  "reload the page; if this persists, tell the clinic (the server's TURN secret does not match the TURN server's)";
const TURN_UNREACHABLE = "the TURN relay server cannot be reached";

function gathered(pc, timeoutMs) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs); // send what we have
  });
}

export class Call {
  // setup(pc): adds the transceivers (in the relay's order) and returns them.
  // onTrack(event, transceivers), onMessage(object), onState(state, detail).
  constructor(link, { setup, onTrack, onMessage, onState }) {
    Object.assign(this, { link, setup, onTrack, onMessage, onState });
    this.pc = null;
    this.channel = null;
    this.stopped = false;
    this.retrying = false;
    this.events = null;
    this.cookieMade = false;
    this.retryMs = 1000;
    this.retryTimer = null;
  }

  // The relay's ICE configuration for this page: STUN/TURN servers, fresh TURN credentials.
  async iceConfig() {
    const response = await api(this.link, `${this.link.role}/ice`);
    if (response.status === 404) { this.end("ended", "This consultation has ended."); return null; }
    if (response.status === 403) { this.end("error", "This link is not valid."); return null; }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return await response.json();
  }

  // The front's word outside the media connection: "reconnect" when the room's media
  // worker was lost (a crash, a lost cluster node): reconnect now, not after the browser
  // has given up on the dead connection. The stream also says when the relay is back
  // after a restart: the browser reopens it by itself (every second, as the relay asks)
  // while the relay is down, and a page waiting to retry then retries at once instead
  // of after its backoff. A stream the relay refused (the browser gives it up) is opened
  // again at the next start(). EventSource cannot send headers: the token goes as this
  // room's cookie, made once (it outlives a restart of the relay, as the room does).
  async listen() {
    const open = () => this.events && this.events.readyState !== EventSource.CLOSED;
    if (this.stopped || open()) return;
    if (!this.cookieMade) {
      const response = await api(this.link, `${this.link.role}/session`, { method: "POST" });
      if (!response.ok) return;
      this.cookieMade = true;
    }
    if (this.stopped || open()) return;
    const events = new EventSource(apiUrl(this.link, `${this.link.role}/events`));
    this.events = events;
    events.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "reconnect" && !this.stopped) {
        this.retryMs = 250;
        this.retry("the consultation's media restarted");
      }
    };
    events.onopen = () => {
      if (this.retrying && this.pc === null && !this.stopped) {
        this.retryMs = 250;
        this.retry("the relay is back");
      }
    };
  }

  async start() {
    if (this.stopped) return;
    await this.listen().catch(() => {}); // without it, the page still reconnects when its connection fails
    if (!this.retrying) this.onState("connecting"); // while retrying, the reason stays shown
    let config;
    try {
      config = await this.iceConfig();
    } catch (error) {
      return this.retry(String(error.message || error));
    }
    if (!config) return;
    const pc = new RTCPeerConnection(config);
    this.pc = pc;
    const turnErrors = [];
    pc.addEventListener("icecandidateerror", (event) => {
      if (/^turns?:/.test(event.url || "")) turnErrors.push(event.errorCode);
    });
    const transceivers = this.setup(pc);
    pc.ontrack = (event) => this.onTrack(event, transceivers);
    const channel = pc.createDataChannel("dmask");
    this.channel = channel;
    channel.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ended") this.end("ended", "The consultation has ended.");
      else this.onMessage(message);
    };
    pc.onconnectionstatechange = () => this.watch(pc);
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 3000);
      if (config.iceTransportPolicy === "relay" && !/ typ relay/.test(pc.localDescription.sdp)) {
        throw new Error(turnErrors.includes(401) ? TURN_REFUSED : TURN_UNREACHABLE);
      }
      const response = await api(this.link, `${this.link.role}/offer`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.status === 404) return this.end("ended", "This consultation has ended.");
      if (response.status === 403) return this.end("error", "This link is not valid.");
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      await pc.setRemoteDescription(body);
      this.retryMs = 1000;
    } catch (error) {
      if (pc === this.pc) this.retry(String(error.message || error));
    }
  }

  // A JSON message to the relay over the data channel; false when it cannot go now.
  send(message) {
    if (!this.channel || this.channel.readyState !== "open") return false;
    this.channel.send(JSON.stringify(message));
    return true;
  }

  watch(pc) {
    if (pc !== this.pc || this.stopped) return;
    const state = pc.connectionState;
    if (state === "connected") { this.retrying = false; this.onState("connected"); }
    if (state === "failed") this.retry("connection lost");
    if (state === "disconnected") {
      this.onState("reconnecting");
      setTimeout(() => { if (pc === this.pc && pc.connectionState === "disconnected") this.retry("connection lost"); }, 3000);
    }
  }

  retry(reason) {
    if (this.stopped) return;
    if (this.pc) this.pc.close();
    this.pc = null;
    this.retrying = true;
    this.onState("reconnecting", reason);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.start(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 10000);
  }

  end(state, detail) {
    this.stopped = true;
    if (this.events) this.events.close();
    if (this.pc) this.pc.close();
    this.pc = null;
    this.onState(state, detail);
  }

  leave() {
    if (this.stopped) return;
    api(this.link, `${this.link.role}/leave`, { method: "POST", keepalive: true }).catch(() => {});
    this.end("ended", "You left the consultation.");
  }
}

export function setStatus(element, state, text) {
  element.dataset.state = state;
  element.textContent = text;
}

export function toggleMute(button, track, label) {
  if (!track) { button.disabled = true; return; }
  button.addEventListener("click", () => {
    track.enabled = !track.enabled;
    button.setAttribute("aria-pressed", String(!track.enabled));
    button.textContent = track.enabled ? `Mute ${label}` : `Unmute ${label}`;
  });
}
