// One way for the pages to call the JSON API: same-origin, the page's CSRF token on every call,
// the server's {"detail": ...} sentence as the error message.
window.reidApi = async function reidApi(method, url, body) {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const headers = { "X-CSRF-Token": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(url, { method, headers, credentials: "same-origin",
                               body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.detail || `${r.status} ${r.statusText}`);
  return data;
};
