// Start page (signed-in clinicians only): create a room and show its two links, sign out.
const $ = (id) => document.getElementById(id);
let csrf = "";

function showError(text) {
  $("error").textContent = text;
  $("error").classList.remove("hidden");
}

async function post(path) {
  return fetch(path, { method: "POST", headers: { "X-CSRF-Token": csrf } });
}

$("create").addEventListener("click", async () => {
  const response = await post("/api/rooms");
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) { location.replace("/login"); return; }
  if (!response.ok) return showError(body.error || `Could not create a consultation (HTTP ${response.status}).`);
  $("error").classList.add("hidden");
  $("patient-link").value = body.patient;
  $("doctor-link").href = body.doctor;
  $("links").classList.remove("hidden");
});

$("copy").addEventListener("click", () => navigator.clipboard.writeText($("patient-link").value));

$("sign-out").addEventListener("click", async () => {
  await post("/api/logout");
  location.replace("/login");
});

async function main() {
  const session = await (await fetch("/api/session")).json();
  if (!session.signed_in) { location.replace("/login"); return; }
  csrf = session.csrf;
  $("who").textContent = session.name;
  $("create").disabled = false;
}

main();
