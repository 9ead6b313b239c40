// First-account page: the one-time code from the link's fragment (never sent as part of a
// URL), a name and a password to /api/setup, which signs the new clinician in.
const $ = (id) => document.getElementById(id);
const code = new URLSearchParams(location.hash.slice(1)).get("code") || "";
history.replaceState(null, "", location.pathname);

function showError(text) {
  $("error").textContent = text;
  $("error").classList.remove("hidden");
}

if (!code) showError("This page needs the complete link that dmask serve printed (it ends in #code=…).");
$("setup").addEventListener("submit", async (event) => {
  event.preventDefault();
  if ($("password").value !== $("again").value) return showError("The two passwords differ.");
  const response = await fetch("/api/setup", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code, name: $("name").value, password: $("password").value }),
  });
  const body = await response.json().catch(() => ({}));
  if (response.ok) { location.replace("/"); return; }
  showError(body.error || `Could not create the account (HTTP ${response.status}).`);
});
