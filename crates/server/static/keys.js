// Security keys and passkeys (WebAuthn) on tessera's pages. A button with data-keys="register"
// or data-keys="assert" asks the server for options (POST data-begin, JSON), runs the browser's
// ceremony, puts the answers in its form's hidden fields and submits the form. The server keeps
// every ceremony's state; this script only carries bytes.
"use strict";

const b64u = {
  decode(s) {
    const pad = "=".repeat((4 - (s.length % 4)) % 4);
    const bin = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  },
  encode(buf) {
    let bin = "";
    for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

// The server's options with their base64url fields as the bytes the browser wants.
function decodeOptions(o) {
  const pk = structuredClone(o.publicKey);
  pk.challenge = b64u.decode(pk.challenge);
  if (pk.user) pk.user.id = b64u.decode(pk.user.id);
  for (const c of [...(pk.excludeCredentials || []), ...(pk.allowCredentials || [])]) {
    c.id = b64u.decode(c.id);
  }
  return { publicKey: pk };
}

function registration(c) {
  return JSON.stringify({
    id: c.id,
    rawId: b64u.encode(c.rawId),
    type: c.type,
    extensions: c.getClientExtensionResults(),
    response: {
      attestationObject: b64u.encode(c.response.attestationObject),
      clientDataJSON: b64u.encode(c.response.clientDataJSON),
      transports: c.response.getTransports ? c.response.getTransports() : [],
    },
  });
}

function assertion(c) {
  return JSON.stringify({
    id: c.id,
    rawId: b64u.encode(c.rawId),
    type: c.type,
    extensions: c.getClientExtensionResults(),
    response: {
      authenticatorData: b64u.encode(c.response.authenticatorData),
      clientDataJSON: b64u.encode(c.response.clientDataJSON),
      signature: b64u.encode(c.response.signature),
      userHandle: c.response.userHandle ? b64u.encode(c.response.userHandle) : null,
    },
  });
}

function say(form, text) {
  let p = form.querySelector(".key-error");
  if (!p) {
    p = document.createElement("p");
    p.className = "error key-error";
    p.setAttribute("role", "alert");
    form.prepend(p);
  }
  p.textContent = text;
}

async function run(button) {
  const form = button.form;
  const csrf = form.querySelector('input[name="csrf"]').value;
  const otp = form.elements.otp;
  const typed = otp && otp.value.trim();
  if (button.dataset.keys === "assert" && typed) {
    // a one-time password or recovery code was typed instead of using a key
    form.submit();
    return;
  }
  const res = await fetch(button.dataset.begin, {
    method: "POST",
    headers: { "x-csrf-token": csrf },
    credentials: "same-origin",
  });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || "The server refused.");
  if (body.assert && !typed) {
    // An account with keys proves one of them before adding another (unless a one-time
    // password or recovery code was typed instead).
    const got = await navigator.credentials.get(decodeOptions(body.assert));
    form.elements.assert_ceremony.value = body.assert.ceremony;
    form.elements.assertion.value = assertion(got);
  }
  if (button.dataset.keys === "register") {
    const made = await navigator.credentials.create(decodeOptions(body));
    form.elements.credential.value = registration(made);
  } else {
    const got = await navigator.credentials.get(decodeOptions(body));
    form.elements.credential.value = assertion(got);
  }
  form.elements.ceremony.value = body.ceremony;
  form.submit();
}

for (const button of document.querySelectorAll("button[data-keys]")) {
  button.addEventListener("click", (e) => {
    e.preventDefault();
    if (!button.form.reportValidity()) return;
    if (!window.PublicKeyCredential) {
      say(button.form, "This browser cannot use security keys.");
      return;
    }
    run(button).catch((err) => say(button.form, err.message || String(err)));
  });
}
