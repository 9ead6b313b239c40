// Start page: create a room and show its two links.
const $ = (id) => document.getElementById(id);

$("create").addEventListener("click", async () => {
  const response = await fetch("/api/rooms", { method: "POST" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("error").textContent = body.error || `Could not create a consultation (HTTP ${response.status}).`;
    $("error").classList.remove("hidden");
    return;
  }
  $("error").classList.add("hidden");
  $("patient-link").value = body.patient;
  $("doctor-link").href = body.doctor;
  $("links").classList.remove("hidden");
});

$("copy").addEventListener("click", () => navigator.clipboard.writeText($("patient-link").value));
