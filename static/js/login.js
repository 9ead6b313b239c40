// Sign-in page: name and password to /api/login, which sets the session cookie.
const $ = (id) => document.getElementById(id);

function showError(text) {
  $("error").textContent = text;
  $("error").classList.remove("hidden");
}

async function main() {
  const session = await (await fetch("/api/session")).json();
  if (session.signed_in) { location.replace("/"); return; }
  if (!session.accounts) $("no-accounts").classList.remove("hidden");
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("submit").disabled = true;
    try {
      const response = await fetch("/api/login", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: $("name").value, password: $("password").value }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) { location.replace("/"); return; }
      $("password").value = "";
      showError(body.error || `Could not sign in (HTTP ${response.status}).`);
    } catch (error) {
      showError(`The relay cannot be reached (${error.message || error}).`);
    } finally {
      $("submit").disabled = false;
    }
  });
}

main();
