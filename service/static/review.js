// The review queue: one item at a time, keyboard first.
// 1-5 confirm that candidate, n new individual, x not identifiable, s skip, u undo, arrows move.
(() => {
  "use strict";
  const root = document.getElementById("review");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const state = { items: [], index: 0, total: 0, undo: [], busy: false };

  const api = window.reidApi;  // api.js

  function say(text, error = false) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", error);
  }

  function filters() {
    const params = new URLSearchParams({ status: "pending", limit: "500" });
    for (const [k, v] of new FormData($("filters"))) if (v) params.set(k, v);
    return params;
  }

  async function load(focusId) {
    const data = await api("GET", "/v1/reviews?" + filters());
    state.items = data.items;
    state.total = data.total;
    const at = state.items.findIndex((it) => it.id === focusId);
    state.index = at >= 0 ? at : Math.min(state.index, Math.max(0, state.items.length - 1));
    render();
  }

  function text(tag, content, cls) {
    const el = document.createElement(tag);
    el.textContent = content;
    if (cls) el.className = cls;
    return el;
  }

  function render() {
    $("counter").textContent = `${state.total} left`;
    const item = state.items[state.index];
    $("item").hidden = !item;
    $("empty").hidden = !!item;
    if (!item) return;
    root.dataset.item = item.id;
    $("query-photo").src = item.photo_url;
    $("query-photo").classList.remove("zoomed");
    const where = [item.file_name, item.viewpoint + " flank", item.timestamp, item.station,
                   `machine: ${item.verdict}`, `${state.index + 1} of ${state.items.length}`];
    $("query-meta").textContent = where.filter(Boolean).join(" · ");
    renderGroup(item);
    const list = $("candidates");
    list.replaceChildren();
    item.candidates.slice(0, 5).forEach((c, i) => {
      const li = document.createElement("li");
      li.className = "candidate";
      li.dataset.individual = c.individual_id;
      li.append(text("span", String(i + 1), "key"));
      const head = document.createElement("div");
      head.append(text("span", c.identity, "who"),
                  text("span", ` · P ${(100 * c.probability).toFixed(1)}% · ${c.inliers} spots`),
                  text("span", c.last_seen ? ` · last seen ${c.last_seen}${c.last_station ? " at " + c.last_station : ""}` : "", "muted"));
      li.append(head);
      const img = document.createElement("img");
      img.className = "evidence";
      img.alt = `evidence for ${c.identity}`;
      img.loading = "lazy";
      img.src = c.evidence_url;
      li.append(img);
      list.append(li);
    });
    if (!item.candidates.length) list.append(text("li", "No compatible individual in the catalogue: n names a new one.", "muted"));
  }

  // A multi-photo item (reid.review.record_group): one decision enrolls all of these, so the
  // reviewer sees all of them; a click shows that photo large.
  function renderGroup(item) {
    const strip = $("group-photos");
    const photos = item.photos || [];
    strip.hidden = photos.length < 2;
    strip.replaceChildren();
    if (strip.hidden) return;
    strip.append(text("p", `${photos.length} photos, one animal? A decision enrolls all of them.`, "muted"));
    photos.forEach((p) => {
      const img = document.createElement("img");
      img.className = "group-photo";
      img.src = p.photo_url;
      img.alt = `photo ${p.position + 1}: ${p.viewpoint} flank`;
      img.title = [p.file_name, p.viewpoint + " flank", p.timestamp].filter(Boolean).join(" · ");
      img.addEventListener("click", () => { $("query-photo").src = p.photo_url; });
      strip.append(img);
    });
  }

  async function decide(body, label) {
    const item = state.items[state.index];
    if (!item || state.busy) return;
    state.busy = true;
    say(`${label}…`);
    try {
      const done = await api("POST", `/v1/reviews/${item.id}/decision`, { ...body, version: item.version });
      state.undo.push(item.id);
      say(done.individual ? `${label}: ${done.individual}` : label);
      await load();
    } catch (err) {
      say(err.message, true);
    } finally {
      state.busy = false;
    }
  }

  async function undo() {
    const id = state.undo.pop();
    if (id === undefined) { say("Nothing to undo in this session.", true); return; }
    state.busy = true;
    try {
      await api("POST", `/v1/reviews/${id}/undo`);
      say(`Undone: item ${id} is back in the queue.`);
      await load(id);
    } catch (err) {
      say(err.message, true);
    } finally {
      state.busy = false;
    }
  }

  function showNew() {
    $("new-form").hidden = false;
    $("new-name").value = "";
    $("new-name").focus();
  }

  $("new-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("new-name").value.trim();
    if (!name) return;
    $("new-form").hidden = true;
    decide({ action: "new", name }, "New individual");
  });
  $("new-name").addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { $("new-form").hidden = true; ev.stopPropagation(); }
  });
  $("filters").addEventListener("change", () => { state.index = 0; load().catch((e) => say(e.message, true)); });
  $("query-photo").addEventListener("click", (ev) => {
    const img = ev.currentTarget;
    const box = img.getBoundingClientRect();
    img.style.transformOrigin = `${100 * (ev.clientX - box.left) / box.width}% ${100 * (ev.clientY - box.top) / box.height}%`;
    img.classList.toggle("zoomed");
  });

  document.addEventListener("keydown", (ev) => {
    const tag = (ev.target.tagName || "").toLowerCase();
    if (["input", "select", "textarea"].includes(tag) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const item = state.items[state.index];
    if (/^[1-5]$/.test(ev.key)) {
      const c = item && item.candidates[Number(ev.key) - 1];
      if (c) decide({ action: "confirm", individual_id: c.individual_id }, "Confirmed");
    } else if (ev.key === "n") {
      if (item) { ev.preventDefault(); showNew(); }
    } else if (ev.key === "x") {
      decide({ action: "not_identifiable" }, "Not identifiable");
    } else if (ev.key === "s") {
      decide({ action: "skip" }, "Skipped");
    } else if (ev.key === "u") {
      undo();
    } else if (ev.key === "ArrowRight" || ev.key === "ArrowDown") {
      ev.preventDefault();
      if (state.index < state.items.length - 1) { state.index += 1; render(); }
    } else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (state.index > 0) { state.index -= 1; render(); }
    }
  });

  load().then(() => { root.dataset.ready = "true"; }).catch((err) => say(err.message, true));
})();
