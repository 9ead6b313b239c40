// The patient's page: camera and microphone to the relay; back come the avatar (as the
// doctor sees it), the doctor's voice and, if shared, the doctor's camera.
import { Call, roomFromLocation, setStatus, toggleMute } from "./call.js";
import { PatientExam } from "./exam.js";

const $ = (id) => document.getElementById(id);
const status = $("status");
let connected = false;
let face = null;

function showStatus() {
  if (!connected) return;
  if (face === false) setStatus(status, "noface", "Face not found — please look at the camera, in good light.");
  else setStatus(status, "live", "Live — your doctor sees your avatar.");
}

async function openCamera() {
  const video = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: true });
  } catch (error) {
    return await navigator.mediaDevices.getUserMedia({ video }); // no microphone: video only
  }
}

async function main() {
  const link = await roomFromLocation();
  let stream;
  try {
    stream = await openCamera();
  } catch (error) {
    setStatus(status, "error", `The camera is not available (${error.name}). Allow it in the browser and try again.`);
    $("camera-retry").classList.remove("hidden");
    $("camera-retry").addEventListener("click", () => location.reload());
    return;
  }
  const [camera] = stream.getVideoTracks();
  const [mic] = stream.getAudioTracks();
  toggleMute($("mute"), mic, "microphone");

  let exam = null;
  const call = new Call(link, {
    setup(pc) {
      return [
        pc.addTransceiver(camera, { direction: "sendrecv" }),       // camera out, avatar back
        pc.addTransceiver(mic || "audio", { direction: "sendrecv" }),
        pc.addTransceiver("video", { direction: "recvonly" }),     // the doctor's camera
      ];
    },
    onTrack(event, transceivers) {
      const media = new MediaStream([event.track]);
      if (event.transceiver === transceivers[0]) $("avatar").srcObject = media;
      else if (event.track.kind === "audio") $("remote-audio").srcObject = media;
      else {
        const video = $("doctor-camera");
        video.srcObject = media;
        event.track.onunmute = () => video.classList.remove("hidden");
        event.track.onmute = () => video.classList.add("hidden");
      }
    },
    onMessage(message) {
      if (message.type === "status") { face = message.face; showStatus(); }
      if (message.type === "exam") exam.onMessage(message);
      if (message.type === "peers") {
        $("doctor-presence").textContent = message.doctor ? "Your doctor is here." : "Waiting for your doctor to join.";
      }
    },
    onState(state, detail) {
      connected = state === "connected";
      if (!connected) exam.onConnectionLost();
      if (state === "connected") showStatus();
      else if (state === "connecting") setStatus(status, "connecting", "Connecting…");
      else if (state === "reconnecting") setStatus(status, "reconnecting", detail ? `Reconnecting: ${detail}` : "Reconnecting…");
      else {
        setStatus(status, state, detail || "The consultation has ended.");
        stream.getTracks().forEach((track) => track.stop());
      }
    },
  });
  exam = new PatientExam((message) => call.send(message));
  $("leave").addEventListener("click", () => call.leave());
  window.addEventListener("pagehide", () => call.leave());
  await call.start();
}

main();
