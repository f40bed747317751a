// Signing in: single sign-on when the server offers it, or an API token pasted once.
import { html, useState } from "../vendor/standalone.module.js";
import { api } from "../lib/api.js";
import { ErrorBox } from "../lib/components.js";

export function LoginPage({ config = {}, onSignedIn = () => location.assign("/") }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.post("/ui/session", { token });
      onSignedIn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main data-page="login" data-ready="true" class="login">
    <h1>Sign in to plinth</h1>
    ${config.sso ? html`<p><a class="button primary" data-testid="sso" href="/api/v1/auth/login">Sign in with single sign-on</a></p><p class="muted">or with an API token:</p>` : null}
    <form onSubmit=${submit}>
      <label for="token">API token (<code>plinth tokens create</code>)</label>
      <input id="token" name="token" type="password" autocomplete="off" value=${token} onInput=${(e) => setToken(e.target.value)} required/>
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
    </form>
    <${ErrorBox} error=${error} testid="login-error"/>
  </main>`;
}
